package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// HTTPOrigin serves the files of another web server that honours Range:
// nginx, an artifact store, an object store's HTTP endpoint. The file at
// rel is base + rel, with base's query (a signature, say) on every request.
// A version is the origin's ETag, or its Last-Modified where it sends no
// ETag; reads are pinned to it with If-Match or If-Unmodified-Since.
type HTTPOrigin struct {
	base   *url.URL
	client *http.Client
}

// NewHTTPOrigin returns an origin for the files below base (an http or
// https URL; a path that does not end in / gets one). client nil means a
// client with the default transport.
func NewHTTPOrigin(base string, client *http.Client) (*HTTPOrigin, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("origin %q: want an http:// or https:// URL", redactURL(base))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &HTTPOrigin{base: u, client: client}, nil
}

// redactURL returns u without its query and user information, which may
// hold credentials, for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

func (o *HTTPOrigin) String() string { return redactURL(o.base.String()) }

// Close closes the origin's idle connections.
func (o *HTTPOrigin) Close() error {
	o.client.CloseIdleConnections()
	return nil
}

func (o *HTTPOrigin) url(rel string) string {
	u := *o.base
	u.Path += rel
	u.RawPath = ""
	return u.String()
}

// do sends a request for rel and maps the origin's failures to the origin
// errors, with a detail that names no credentials.
func (o *HTTPOrigin) do(ctx context.Context, method, rel string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, o.url(rel), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := o.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query and all
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s %s: %v", ErrOriginUnavailable, method, redactURL(req.URL.String()), err)
	}
	if err := originStatus(resp.StatusCode); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s %s: %s", err, method, redactURL(req.URL.String()), resp.Status)
	}
	return resp, nil
}

// originStatus maps an origin's failed status to the origin errors.
func originStatus(code int) error {
	switch {
	case code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return errNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return ErrOriginDenied
	case code == http.StatusPreconditionFailed:
		return ErrOriginChanged
	case code == http.StatusRequestedRangeNotSatisfiable:
		return ErrOriginChanged // shorter than the version we opened
	case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
		return ErrOriginUnavailable
	}
	return fmt.Errorf("%w: unexpected status", ErrOriginUnavailable)
}

// Open asks the origin for the file's current version with a HEAD.
func (o *HTTPOrigin) Open(ctx context.Context, rel string) (Object, error) {
	stat := func(ctx context.Context) (ObjectInfo, error) { return o.stat(ctx, rel) }
	return openRemote(ctx, stat, o.get)
}

func (o *HTTPOrigin) stat(ctx context.Context, rel string) (ObjectInfo, error) {
	resp, err := o.do(ctx, http.MethodHead, rel, nil)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return ObjectInfo{}, fmt.Errorf("%w: HEAD %s: no Content-Length", ErrOriginUnavailable, redactURL(o.url(rel)))
	}
	info := ObjectInfo{Path: rel, Size: resp.ContentLength}
	lm := resp.Header.Get("Last-Modified")
	info.ModTime, _ = http.ParseTime(lm)
	info.Version = resp.Header.Get("ETag")
	if info.Version == "" && lm != "" {
		info.Version = "lm:" + lm
	}
	if info.Version == "" {
		return ObjectInfo{}, fmt.Errorf("%w: HEAD %s: neither ETag nor Last-Modified, so a change could not be told", ErrOriginUnavailable, redactURL(o.url(rel)))
	}
	return info, nil
}

// get opens info's version from off on, pinned to it.
func (o *HTTPOrigin) get(ctx context.Context, info ObjectInfo, off int64) (io.ReadCloser, error) {
	h := http.Header{"Range": {"bytes=" + strconv.FormatInt(off, 10) + "-"}}
	switch {
	case strings.HasPrefix(info.Version, "lm:"):
		h.Set("If-Unmodified-Since", strings.TrimPrefix(info.Version, "lm:"))
	case strings.HasPrefix(info.Version, "W/"):
		// If-Match compares strongly: a weak ETag never matches. Unchanged
		// and the size check below are what is left.
	default:
		h.Set("If-Match", info.Version)
	}
	resp, err := o.do(ctx, http.MethodGet, info.Path, h)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusPartialContent && off > 0 {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s answers a Range request with %s: it must honour Range", ErrOriginUnavailable, o, resp.Status)
	}
	if e := resp.Header.Get("ETag"); e != "" && !strings.HasPrefix(info.Version, "lm:") && e != info.Version {
		resp.Body.Close()
		return nil, ErrOriginChanged
	}
	if cr := resp.Header.Get("Content-Range"); cr != "" && !strings.HasSuffix(cr, "/"+strconv.FormatInt(info.Size, 10)) {
		resp.Body.Close()
		return nil, ErrOriginChanged
	}
	return resp.Body, nil
}

// Walk lists nothing: a web server has no standard listing. The files are
// served by name all the same.
func (o *HTTPOrigin) Walk(context.Context, func(ObjectInfo) error) error { return nil }

// Ready asks the origin for its base URL: any answer but a server error or
// no answer means it is up.
func (o *HTTPOrigin) Ready(ctx context.Context) error {
	resp, err := o.do(ctx, http.MethodHead, "", nil)
	if err != nil && !errors.Is(err, ErrOriginUnavailable) {
		return nil // a 403 or 404 for the folder itself: the server answers
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
