package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

// TestGetFromReplicasThatDisagree: two servers with the same bytes but
// different mtimes (a plain cp, so different etags) behind one URL that
// alternates between them, every connection cut after a few blocks. A
// resumed ferry get pinned to one etag meets the other's 412 again and
// again: it must finish byte-identical or exit 7 within its retries,
// saying the servers disagree, after at most --retries + 1 manifest
// requests.
func TestGetFromReplicasThatDisagree(t *testing.T) {
	data := randomData(60, 24*testBS)
	var srvs []*server.Server
	for i := range 2 {
		root := t.TempDir()
		p := filepath.Join(root, "f.bin")
		os.WriteFile(p, data, 0o644)
		mtime := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		srvs = append(srvs, srv)
	}
	var next, manifests atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/manifest/") {
			manifests.Add(1)
		}
		srvs[next.Add(1)%2].ServeHTTP(w, r)
	}))
	defer ts.Close()
	proxy, err := servertest.NewProxy(ts.Listener.Addr().String(), func(int) servertest.Fault { return servertest.Fault{CutAt: 5 * testBS} })
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	url := "http://" + proxy.Addr + "/sse/f.bin"
	out := filepath.Join(t.TempDir(), "f.bin")
	if code, _, stderr := ferry(t, "get", url, "-o", out, "--retries", "0", "--progress", "line"); code != exitNetwork {
		t.Fatalf("cut download: exit %d, want %d\n%s", code, exitNetwork, stderr)
	}
	manifests.Store(0)
	code, _, stderr := ferry(t, "get", url, "-o", out, "--retries", "3", "--progress", "line")
	t.Logf("exit %d after %d manifest requests, %d bytes of stderr", code, manifests.Load(), len(stderr))
	if n := manifests.Load(); n > 4 {
		t.Errorf("%d manifest requests, want at most --retries + 1 = 4", n)
	}
	switch code {
	case exitOK:
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
			t.Fatal("exit 0 but the file differs")
		}
	case exitChanged:
		if !strings.Contains(stderr, "disagree about the file's version: etag ") {
			t.Errorf("exit 7 without saying the servers disagree:\n%s", stderr)
		}
		if _, err := os.Stat(out + ".part"); err != nil {
			t.Errorf("the partial download is gone: %v", err)
		}
	default:
		t.Fatalf("exit %d, want 0 or 7:\n%s", code, stderr)
	}
}
