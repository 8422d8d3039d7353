package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/manifest"
)

func startWith(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts
}

func status(t *testing.T, u string, header ...string) int {
	t.Helper()
	resp := get(t, u, header...)
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestTokens(t *testing.T) {
	ts := startWith(t, Config{Root: "../testdata", BlockSize: 1024, Tokens: []string{"s3cret-token", "other-token"}})
	for _, path := range []string{"/sse/one-byte.bin", "/files/one-byte.bin", "/manifest/one-byte.bin", "/api/files"} {
		tests := []struct {
			header []string
			want   int
		}{
			{nil, 401},
			{[]string{"Authorization", "Bearer wrong-token"}, 401},
			{[]string{"Authorization", "Basic s3cret-token"}, 401},
			{[]string{"Authorization", "Bearer s3cret-token"}, 200},
			{[]string{"Authorization", "bearer other-token"}, 200},
		}
		for _, tt := range tests {
			if got := status(t, ts.URL+path, tt.header...); got != tt.want {
				t.Errorf("%s with %v: status %d, want %d", path, tt.header, got, tt.want)
			}
		}
	}
	for _, path := range []string{"/", "/healthz"} {
		if got := status(t, ts.URL+path); got != 200 {
			t.Errorf("%s without a token: %d, want 200 (public)", path, got)
		}
	}
}

func TestSignedURLs(t *testing.T) {
	root := copyTestdata(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	ts := startWith(t, Config{Root: root, BlockSize: 1024, SignKey: key})
	etagOf := func(rel string) string {
		info, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return manifest.ETag(info.Size(), info.ModTime(), 1024)
	}
	valid := Sign(key, "multi-block.bin", etagOf("multi-block.bin"), time.Now().Add(time.Hour))
	with := func(q url.Values, mutate func(url.Values)) string {
		c := url.Values{}
		for k, v := range q {
			c[k] = append([]string(nil), v...)
		}
		if mutate != nil {
			mutate(c)
		}
		return c.Encode()
	}
	tests := []struct {
		name string
		url  string
		want int
	}{
		{"sse", "/sse/multi-block.bin?" + with(valid, nil), 200},
		{"files", "/files/multi-block.bin?" + with(valid, nil), 200},
		{"manifest", "/manifest/multi-block.bin?" + with(valid, nil), 200},
		{"with resume parameters", "/sse/multi-block.bin?" + with(valid, func(q url.Values) { q.Set("lastEventId", "1024") }), 200},
		{"no signature", "/sse/multi-block.bin", 401},
		{"another file", "/sse/one-byte.bin?" + with(valid, nil), 403},
		{"missing file", "/sse/nope.bin?" + with(valid, nil), 403},
		{"listing", "/api/files?" + with(valid, nil), 401},
		{"tampered signature", "/sse/multi-block.bin?" + with(valid, func(q url.Values) {
			s := []byte(q.Get("sig"))
			s[0] ^= 1
			q.Set("sig", string(s))
		}), 403},
		{"tampered expiry", "/sse/multi-block.bin?" + with(valid, func(q url.Values) { q.Set("exp", q.Get("exp")+"0") }), 403},
		{"expired", "/sse/multi-block.bin?" + Sign(key, "multi-block.bin", etagOf("multi-block.bin"), time.Now().Add(-time.Second)).Encode(), 403},
		{"other key", "/sse/multi-block.bin?" + Sign([]byte("another key of 32 bytes........."), "multi-block.bin", etagOf("multi-block.bin"), time.Now().Add(time.Hour)).Encode(), 403},
		{"garbage", "/sse/multi-block.bin?exp=abc&sig=xyz", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, ts.URL+tt.url)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %d, want %d (%s)", tt.url, resp.StatusCode, tt.want, body)
			}
			if tt.want == 403 && !strings.Contains(string(body), `"forbidden"`) {
				t.Errorf("403 body %q says more than forbidden", body)
			}
		})
	}
	// A new version of the file invalidates the signature.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(root, "multi-block.bin"), later, later)
	if got := status(t, ts.URL+"/sse/multi-block.bin?"+with(valid, nil)); got != 403 {
		t.Errorf("signature of an old version: %d, want 403", got)
	}
}

func TestCORS(t *testing.T) {
	ts := startWith(t, Config{Root: "../testdata", BlockSize: 1024, CORSOrigins: []string{"https://app.example"}})
	resp := get(t, ts.URL+"/sse/one-byte.bin", "Origin", "https://app.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	resp = get(t, ts.URL+"/sse/one-byte.bin", "Origin", "https://evil.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin: Access-Control-Allow-Origin %q, want none", got)
	}
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/sse/one-byte.bin", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "last-event-id")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode/100 != 2 || !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "last-event-id") {
		t.Errorf("preflight: %d, Allow-Headers %q", pre.StatusCode, pre.Header.Get("Access-Control-Allow-Headers"))
	}

	creds := startWith(t, Config{Root: "../testdata", BlockSize: 1024, CORSOrigins: []string{"https://app.example"}, CORSCredentials: true})
	resp = get(t, creds.URL+"/sse/one-byte.bin", "Origin", "https://app.example")
	if resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("credentials: %v", resp.Header)
	}
	if _, err := New(Config{Root: "../testdata", CORSOrigins: []string{"*"}, CORSCredentials: true}); err == nil {
		t.Error(`New accepted CORS origin "*" with credentials`)
	}
	any := startWith(t, Config{Root: "../testdata", BlockSize: 1024, CORSOrigins: []string{"*"}})
	if got := get(t, any.URL+"/sse/one-byte.bin", "Origin", "https://x.example").Header.Get("Access-Control-Allow-Origin"); got != "https://x.example" && got != "*" {
		t.Errorf(`origin "*": Access-Control-Allow-Origin %q`, got)
	}
}

func TestMaxStreams(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "big.bin", make([]byte, 16<<20))
	ts := startWith(t, Config{Root: root, BlockSize: 1024, MaxStreams: 2})
	var open []*http.Response
	for range 2 {
		resp := get(t, sseURL(ts.URL, "big.bin"))
		newLineReader(resp.Body).until(t, "event: block")
		open = append(open, resp)
	}
	resp := get(t, sseURL(ts.URL, "big.bin"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	open[0].Body.Close()
	// The slot frees once the server notices the closed stream.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r := get(t, sseURL(ts.URL, "big.bin"))
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			break
		}
		select {
		case <-deadline:
			t.Fatal("a closed stream's slot was never freed")
		case <-tick.C:
		}
	}
}

func TestTLSWithHTTP2ParallelStreams(t *testing.T) {
	s, err := New(Config{Root: "../testdata", BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewUnstartedServer(s)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	want, _ := os.ReadFile("../testdata/multi-block.bin")
	c := ts.Client()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			resp, err := c.Get(sseURL(ts.URL, "multi-block.bin", "range=0-"))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("stream %d over %s, want HTTP/2", i, resp.Proto)
			}
			r := readStream(t, resp.Body)
			if len(r.data) != len(want) || r.end == nil {
				t.Errorf("stream %d: %d bytes", i, len(r.data))
			}
		})
	}
	wg.Wait()
}
