package client

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/ferry-dev/ferry/chunker"
)

// endpoints locates one file on a Ferry server.
type endpoints struct {
	base string // scheme://host[/prefix], no trailing slash
	rel  string // escaped path of the file below the endpoint prefix
	// query is any query of the given URL other than Ferry's own
	// parameters (a signed URL's signature, say), kept on every request.
	query url.Values
}

// resolve accepts the /sse/, /files/ or /manifest/ URL of a file.
func resolve(raw string) (endpoints, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoints{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return endpoints{}, fmt.Errorf("%w: %q is not an http or https URL", ErrUsage, raw)
	}
	p := u.EscapedPath()
	for _, prefix := range chunker.FilePaths() {
		if i := strings.Index(p, prefix); i >= 0 && len(p) > i+len(prefix) {
			q := u.Query()
			for _, k := range chunker.ReservedQuery() {
				q.Del(k)
			}
			return endpoints{base: u.Scheme + "://" + u.Host + p[:i], rel: p[i+len(prefix):], query: q}, nil
		}
	}
	return endpoints{}, fmt.Errorf("%w: %q is not the /sse/, /files/ or /manifest/ URL of a file", ErrUsage, raw)
}

func (e endpoints) url(prefix string, extra url.Values) string {
	q := url.Values{}
	for k, v := range e.query {
		q[k] = v
	}
	for k, v := range extra {
		q[k] = v
	}
	s := e.base + prefix + e.rel
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

func (e endpoints) sse(extra url.Values) string      { return e.url(chunker.PathSSE, extra) }
func (e endpoints) manifest(extra url.Values) string { return e.url(chunker.PathManifest, extra) }
