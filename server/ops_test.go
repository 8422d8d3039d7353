package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/server/servertest"
)

// /metrics counts what a stream, a resume and a refused pin did, in
// Prometheus's text format, without a token.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", randomBytes(300<<10, 7))
	s, err := New(Config{Root: dir, BlockSize: 64 << 10, Tokens: []string{"a-long-token"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	auth := []string{"Authorization", "Bearer a-long-token"}
	first := readStream(t, get(t, sseURL(ts.URL, "f.bin"), auth...).Body)
	readStream(t, get(t, sseURL(ts.URL, "f.bin"), append(auth, "Last-Event-ID", "65536")...).Body)
	get(t, sseURL(ts.URL, "f.bin", "v=other"), auth...).Body.Close()
	get(t, sseURL(ts.URL, "f.bin"), append(auth, "Last-Event-ID", "262144")...).Body.Close() // the last block: 204

	resp := get(t, ts.URL+"/metrics")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %s", resp.Status, body)
	}
	blocks := len(first.offsets) + len(first.offsets) - 2
	for _, want := range []string{
		"ferry_streams_open 0",
		`ferry_blocks_sent_total{codec="identity"} ` + strconv.Itoa(blocks),
		"ferry_resumes_total 1",
		`ferry_responses_total{status="200"} 2`,
		`ferry_responses_total{status="204"} 1`,
		`ferry_responses_total{status="412"} 1`,
		"ferry_manifest_cache_hits_total 1", // the resumed stream's digests, from the first stream
		"ferry_manifest_cache_misses_total 1",
		`ferry_origin_request_seconds_count{op="open"} 4`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("%s", body)
	}

	elsewhere, err := New(Config{Root: dir, MetricsElsewhere: true})
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	rec := httptest.NewRecorder()
	elsewhere.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/metrics with MetricsElsewhere: %d, want 404", rec.Code)
	}
}

// /readyz is 200 while the origin answers and the server takes streams;
// 503 with Retry-After when the origin is down or the server drains.
// /healthz says only that the process is up.
func TestReadiness(t *testing.T) {
	dir := t.TempDir()
	s, ts := start(t, dir, 0)
	if resp := get(t, ts.URL+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %s", resp.Status)
	}
	s.Shutdown(context.Background())
	if resp := get(t, ts.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/readyz while draining: %s", resp.Status)
	}
	if resp := get(t, ts.URL+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz while draining: %s", resp.Status)
	}

	o, err := NewHTTPOrigin("http://127.0.0.1:1/", nil)
	if err != nil {
		t.Fatal(err)
	}
	down, err := New(Config{Origin: o})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	rec := httptest.NewRecorder()
	down.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the origin down: %d", rec.Code)
	}
}

// HEAD /sse/ answers what GET would, without a stream.
func TestHeadStream(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", randomBytes(100<<10, 8))
	_, ts := start(t, dir, 64<<10)
	for _, c := range []struct {
		path string
		want int
	}{{"f.bin", 200}, {"nope.bin", 404}} {
		req, _ := http.NewRequest(http.MethodHead, sseURL(ts.URL, c.path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || len(body) != 0 {
			t.Errorf("HEAD %s: %s, %d bytes of body", c.path, resp.Status, len(body))
		}
		if c.want == 200 && (resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("ETag") == "" || resp.Header.Get("X-Accel-Buffering") != "no") {
			t.Errorf("HEAD %s: headers %v", c.path, resp.Header)
		}
	}
}

// The access log names the client from X-Forwarded-For only when the
// connection comes from a trusted proxy.
func TestTrustedProxy(t *testing.T) {
	for _, c := range []struct {
		trusted []string
		want    string
	}{
		{nil, "remote=127.0.0.1"},
		{[]string{"10.0.0.0/8"}, "remote=127.0.0.1"},
		{[]string{"127.0.0.1"}, "remote=203.0.113.9"},
		{[]string{"127.0.0.0/8"}, "remote=203.0.113.9"},
	} {
		var log servertest.SyncBuffer
		s, err := New(Config{Root: t.TempDir(), TrustedProxies: c.trusted, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		get(t, ts.URL+"/healthz", "X-Forwarded-For", "203.0.113.9").Body.Close()
		ts.Close()
		s.Close()
		if !strings.Contains(log.String(), c.want) {
			t.Errorf("trusted %v: log %q, want %s", c.trusted, log.String(), c.want)
		}
	}
	if _, err := New(Config{Root: t.TempDir(), TrustedProxies: []string{"nonsense"}}); err == nil {
		t.Error("a trusted proxy that is no CIDR was accepted")
	}
}
