package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

// replicas serves the same bytes from two servers whose copies have
// different mtimes, so different etags (a plain cp), behind one URL that
// alternates between them request by request, as a round-robin balancer
// does. It counts the manifest requests.
type replicas struct {
	ts        *httptest.Server
	proxy     *servertest.Proxy
	manifests atomic.Int64
}

func newReplicas(t *testing.T, data []byte, plan func(int) servertest.Fault) *replicas {
	t.Helper()
	var srvs []*server.Server
	for i := range 2 {
		root := t.TempDir()
		p := filepath.Join(root, "f.bin")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		srvs = append(srvs, srv)
	}
	r := &replicas{}
	var next atomic.Int64
	r.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/manifest/") {
			r.manifests.Add(1)
		}
		srvs[next.Add(1)%2].ServeHTTP(w, req)
	}))
	var err error
	if r.proxy, err = servertest.NewProxy(r.ts.Listener.Addr().String(), plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.proxy.Close()
		r.ts.Close()
	})
	return r
}

func (r *replicas) url() string { return "http://" + r.proxy.Addr + "/sse/f.bin" }

// TestReplicasDisagreeAboutTheVersion: every connection is cut after a few
// blocks and lands on the other replica, whose etag differs. The download
// either finishes byte-identical or stops within its retries with an error
// that says what is happening, and asks for the manifest at most Retries+1
// times; it never re-reads the blocks on disk for a manifest it has seen.
func TestReplicasDisagreeAboutTheVersion(t *testing.T) {
	data := randomData(50, 24*testBS)
	for _, resumed := range []bool{false, true} {
		t.Run(fmt.Sprintf("resumed=%v", resumed), func(t *testing.T) {
			r := newReplicas(t, data, func(int) servertest.Fault { return servertest.Fault{CutAt: 5 * testBS} })
			out := filepath.Join(t.TempDir(), "f.bin")
			if resumed {
				first := testOptions(out)
				first.Retries = -1
				if _, err := first.run(context.Background(), r.url()); err == nil {
					t.Fatal("a download through a proxy that cuts every connection succeeded at once")
				}
				r.manifests.Store(0)
			}
			var logs []string
			var mu sync.Mutex
			job := testOptions(out)
			job.Retries = 3
			job.Logf = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				logs = append(logs, fmt.Sprintf(format, args...))
			}
			res, err := job.run(context.Background(), r.url())
			log := strings.Join(logs, "\n")
			t.Logf("Download = %v after %d manifest requests", err, r.manifests.Load())
			if n := r.manifests.Load(); n > int64(job.Retries)+1 {
				t.Errorf("%d manifest requests, want at most --retries + 1 = %d; log:\n%s", n, job.Retries+1, log)
			}
			if err == nil {
				checkResult(t, out, data, res)
				return
			}
			if !errors.Is(err, ErrRemoteChanged) || !strings.Contains(err.Error(), "disagree about the file's version: etag ") {
				t.Fatalf("Download = %v; want ErrRemoteChanged saying the servers disagree; log:\n%s", err, log)
			}
			if strings.Count(log, "resuming at block") > 1 {
				t.Errorf("the blocks on disk were checked again for a manifest already seen; log:\n%s", log)
			}
		})
	}
}

// TestRemoteKeepsChanging: a file rewritten before every stream gets the
// same bounded rounds, and the error says it kept changing.
func TestRemoteKeepsChanging(t *testing.T) {
	data := randomData(51, 24*testBS)
	var version atomic.Int64
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	src := filepath.Join(f.root, "f.bin")
	f.proxy.SetPlan(func(n int) servertest.Fault {
		// A new mtime, so a new etag, for every connection after the first.
		if n > 0 {
			at := time.Date(2026, 1, 1, 0, 0, int(version.Add(1)), 0, time.UTC)
			os.Chtimes(src, at, at)
		}
		return servertest.Fault{CutAt: 2 * testBS}
	})
	job := testOptions(filepath.Join(t.TempDir(), "f.bin"))
	job.Retries = 3
	_, err := job.run(context.Background(), f.url("f.bin"))
	if !errors.Is(err, ErrRemoteChanged) || !strings.Contains(err.Error(), "kept changing") {
		t.Fatalf("Download of a file that changes all the time = %v; want ErrRemoteChanged saying it kept changing", err)
	}
}

// TestFlipsInFirstConnections: a byte flipped in each of the first two
// connections costs the blocks it damaged and not the connection: the bytes
// through the proxy stay within one clean stream, plus the bad blocks, plus
// one block per connection.
func TestFlipsInFirstConnections(t *testing.T) {
	const bs = 64 << 10
	data := randomData(52, 16<<20)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Root: root, BlockSize: bs, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()
	through := func(plan func(int) servertest.Fault) (*Result, *servertest.Proxy) {
		t.Helper()
		p, err := servertest.NewProxy(ts.Listener.Addr().String(), plan)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		out := filepath.Join(t.TempDir(), "f.bin")
		job := testOptions(out)
		job.NoCompression = true
		res, err := job.run(context.Background(), "http://"+p.Addr+"/sse/f.bin")
		if err != nil {
			t.Fatalf("Download: %v", err)
		}
		checkResult(t, out, data, res)
		return res, p
	}
	_, clean := through(nil)
	res, flipped := through(func(n int) servertest.Fault {
		if n < 2 {
			return servertest.Fault{FlipAt: 5<<20 + int64(n)*1000}
		}
		return servertest.Fault{}
	})
	event := clean.BytesDown() / int64(len(data)/bs) // one block's event, with its share of the rest
	bound := clean.BytesDown() + int64(res.BlocksRefetched)*event + int64(flipped.Conns())*event
	t.Logf("clean %d bytes; two flips: %d bytes over %d connections, %d blocks refetched; bound %d",
		clean.BytesDown(), flipped.BytesDown(), flipped.Conns(), res.BlocksRefetched, bound)
	if res.BlocksRefetched < 1 || res.BlocksRefetched > 4 {
		t.Errorf("%d blocks refetched, want the one or two each flip damaged", res.BlocksRefetched)
	}
	if flipped.BytesDown() > bound {
		t.Errorf("%d bytes through the proxy, want at most %d: a bad block cost more than itself", flipped.BytesDown(), bound)
	}
}

// TestClientReuse: one Client serves several downloads over its one
// transport, and Close closes the connections it left idle.
func TestClientReuse(t *testing.T) {
	data := randomData(53, 6*testBS)
	root := t.TempDir()
	for _, name := range []string{"a.bin", "b.bin"} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	states := map[net.Conn]http.ConnState{}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		states[c] = s
	}
	ts.Start()
	defer ts.Close()
	idle := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range states {
			if s == http.StateIdle {
				n++
			}
		}
		return n
	}
	c := &Client{IdleTimeout: 5 * time.Second}
	dir := t.TempDir()
	for _, name := range []string{"a.bin", "b.bin", "a.bin"} { // the third finds a complete file
		if _, err := c.Download(context.Background(), ts.URL+"/sse/"+name, filepath.Join(dir, name), Options{}); err != nil {
			t.Fatalf("Download %s: %v", name, err)
		}
	}
	waitFor(t, "an idle connection after the downloads", func() bool { return idle() > 0 })
	c.Close()
	waitFor(t, "Close to close the idle connections", func() bool { return idle() == 0 })
}

// waitFor waits until cond holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestOptionsValidated: bad bounds are an ErrUsage from Download itself.
func TestOptionsValidated(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "f.bin")
	tests := []struct {
		name string
		c    *Client
		dst  string
		opts Options
	}{
		{"no destination", &Client{}, "", Options{}},
		{"Parallel negative", &Client{}, dst, Options{Parallel: -1}},
		{"Parallel too high", &Client{}, dst, Options{Parallel: MaxParallel + 1}},
		{"negative MaxTime", &Client{}, dst, Options{MaxTime: -time.Second}},
		{"bad checksum", &Client{}, dst, Options{Checksum: "md5:abc"}},
		{"HTTPClient with a Timeout", &Client{HTTPClient: &http.Client{Timeout: time.Second}}, dst, Options{}},
		{"negative IdleTimeout", &Client{IdleTimeout: -1}, dst, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Download(context.Background(), "http://127.0.0.1:1/sse/f.bin", tt.dst, tt.opts)
			if !errors.Is(err, ErrUsage) {
				t.Errorf("Download = %v, want ErrUsage", err)
			}
		})
	}
}

// TestWaitsForAManifestBeingHashed: a server still hashing a large file
// answers the manifest request 503 with its progress; a resuming client
// waits as long as the progress grows, even with no retries for failures.
func TestWaitsForAManifestBeingHashed(t *testing.T) {
	data := randomData(54, 24<<20)
	f := newFixture(t, map[string][]byte{"f.bin": data}, cutAfter(1<<20))
	out := filepath.Join(t.TempDir(), "f.bin")
	first := testOptions(out)
	first.Retries = -1
	if _, err := first.run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrNetwork) {
		t.Fatalf("cut download = %v, want ErrNetwork", err)
	}
	// A new server over the same folder: nothing hashed yet.
	srv, err := server.New(server.Config{Root: f.root, BlockSize: testBS, ManifestWait: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var notReady atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		srv.ServeHTTP(rec, r)
		if rec.status == http.StatusServiceUnavailable {
			notReady.Add(1)
		}
	}))
	defer ts.Close()
	job := testOptions(out)
	job.Retries = -1
	res, err := job.run(context.Background(), ts.URL+"/sse/f.bin")
	if err != nil {
		t.Fatalf("Download while the manifest was hashed = %v (%d answers 503)", err, notReady.Load())
	}
	checkResult(t, out, data, res)
	if notReady.Load() == 0 {
		t.Error("the server never answered 503: the test did not test the wait")
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() { http.NewResponseController(r.ResponseWriter).Flush() }
