package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server/servertest"
)

// TestManifestNotReady: a manifest that takes longer to hash than
// ManifestWait is answered 503 with Retry-After and how far the hashing
// is, instead of a request held silent past a proxy's timeout; once hashed,
// it is served.
func TestManifestNotReady(t *testing.T) {
	root := t.TempDir()
	size := int64(32 << 20)
	if err := os.WriteFile(filepath.Join(root, "big.bin"), bytes.Repeat([]byte("ferry "), int(size/6)+1)[:size], 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startWith(t, Config{Root: root, ManifestWait: time.Nanosecond})
	resp, err := http.Get(ts.URL + "/manifest/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error  string `json:"error"`
		Hashed int64  `json:"hashed"`
		Size   int64  `json:"size"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("first request: status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if body.Size != size || body.Hashed < 0 || body.Hashed > size || !strings.Contains(body.Error, "not ready") {
		t.Errorf("503 body %+v, want the progress of hashing %d bytes", body, size)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ts.URL + "/manifest/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("status %d while waiting for the manifest", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestClientGoneIsNotAServerError: a client that gives up on a request is
// logged as 499, not as an internal error with status 500.
func TestClientGoneIsNotAServerError(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "big.bin"), bytes.Repeat([]byte{7}, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs servertest.SyncBuffer
	s, err := New(Config{Root: root, ManifestWait: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/manifest/big.bin", nil)
	done := make(chan struct{})
	go func() { http.DefaultClient.Do(req); close(done) }() // returns when cancelled
	// Give up once the server is hashing, long before it is done.
	hashing := func() bool {
		n := 0
		s.hashing.Range(func(any, any) bool { n++; return false })
		return n > 0
	}
	for start := time.Now(); !hashing(); time.Sleep(time.Millisecond) { // polling a condition, with a deadline
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server did not start hashing within 10s")
		}
	}
	cancel()
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "status=499") {
		if time.Now().After(deadline) {
			t.Fatalf("no request logged with status 499; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	if strings.Contains(logs.String(), "internal error") || strings.Contains(logs.String(), "status=500") {
		t.Errorf("a client that left was logged as a server error:\n%s", logs.String())
	}
}
