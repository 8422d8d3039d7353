package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/manifest"
)

// errIdle is the cause of a request cancelled by the idle watchdog.
var errIdle = errors.New("client: connection idle")

func (d *download) newRequest(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	for k, vs := range d.cfg.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "text/event-stream, application/json")
	return req, nil
}

// statusError returns nil for 200 and an *HTTPError for anything else.
func statusError(resp *http.Response, u string) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	he := &HTTPError{URL: u, Status: resp.StatusCode, hashed: -1}
	var body struct {
		Error  string `json:"error"`
		Hashed *int64 `json:"hashed"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body) == nil {
		he.Message = body.Error
		if body.Hashed != nil {
			he.hashed = *body.Hashed
		}
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			he.retryAfter = time.Duration(n) * time.Second
		}
	}
	return he
}

// errCertificate marks a network error no retry can cure: the server's
// certificate is not trusted.
var errCertificate = errors.New("the server's certificate is not trusted")

// netError classifies a failed request or read.
func netError(ctx context.Context, err error) error {
	if context.Cause(ctx) == errIdle {
		return errIdle
	}
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) {
		return fmt.Errorf("%w: %w (give its CA with --cacert FILE, or Client.TLSConfig): %w", ErrNetwork, errCertificate, err)
	}
	return fmt.Errorf("%w: %w", ErrNetwork, err)
}

// fetchManifest fetches and validates the manifest, retrying failures like
// a stream does. A server still hashing a large file answers 503 with its
// progress: that is waited out as long as the progress grows.
func (d *download) fetchManifest(ctx context.Context) (*manifest.Manifest, error) {
	budget := d.newBudget()
	hashed := int64(-1)
	for {
		m, err := d.requestManifest(ctx)
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var he *HTTPError
		if errors.As(err, &he) && he.hashed > hashed {
			hashed = he.hashed
			budget.reset()
			d.logf("%s; waiting", he.Message)
			if err := sleep(ctx, max(he.retryAfter, 100*time.Millisecond)); err != nil {
				return nil, err
			}
			continue
		}
		if err := budget.record(err); err != nil {
			return nil, err
		}
		d.logf("%v; retrying", err)
		if err := budget.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// requestManifest makes one manifest request.
func (d *download) requestManifest(ctx context.Context) (*manifest.Manifest, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, d.cfg.idle, errIdle)
	defer cancel()
	u := d.ep.manifest(d.manifestQuery())
	req, err := d.newRequest(ctx, u)
	if err != nil {
		return nil, err
	}
	resp, err := d.cfg.hc.Do(req)
	if err != nil {
		return nil, netError(ctx, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp, u); err != nil {
		return nil, err
	}
	m, err := manifest.Decode(resp.Body)
	if err != nil {
		if context.Cause(ctx) == errIdle {
			return nil, errIdle
		}
		return nil, fmt.Errorf("%w: manifest: %w", ErrProtocol, err)
	}
	return m, nil
}

// idleReader cancels a request when no bytes arrive for a while.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
	n     int64 // bytes read
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
		ir.n += int64(n)
	}
	return n, err
}
