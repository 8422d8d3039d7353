package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/server/servertest"
)

// fileOrigin is a web server over a folder, as nginx is: Range, and an
// ETag (strong, from size and mtime) with If-Match, unless lastModified
// only. It counts requests by method, and fails or denies on demand.
type fileOrigin struct {
	dir          string
	lastModified bool // no ETag: versions by Last-Modified only
	mu           sync.Mutex
	requests     map[string]int
	status       int   // answered to every request when not 0
	cutAfter     int64 // a GET's body is cut after this many bytes, when not 0
}

// cutWriter aborts its response after n bytes.
type cutWriter struct {
	http.ResponseWriter
	n int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.n {
		c.ResponseWriter.Write(p[:c.n])
		panic(http.ErrAbortHandler)
	}
	c.n -= int64(len(p))
	return c.ResponseWriter.Write(p)
}

func (o *fileOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.requests[r.Method]++
	status, cut := o.status, o.cutAfter
	o.mu.Unlock()
	if cut > 0 && r.Method == http.MethodGet {
		w = &cutWriter{w, cut}
	}
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r.URL.Query().Get("sig") != "s3cr3t-sig" {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	f, err := os.Open(filepath.Join(o.dir, filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/prefix/"))))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		http.NotFound(w, r)
		return
	}
	if !o.lastModified {
		w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, info.ModTime().UnixNano(), info.Size()))
	}
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

func (o *fileOrigin) set(status int) {
	o.mu.Lock()
	o.status = status
	o.mu.Unlock()
}

func (o *fileOrigin) count(method string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[method]
}

// startOrigin serves dir as an origin and a Ferry server over it.
func startOrigin(t *testing.T, dir string, lastModified bool, bs int, log io.Writer) (*fileOrigin, *httptest.Server) {
	t.Helper()
	fo := &fileOrigin{dir: dir, lastModified: lastModified, requests: map[string]int{}}
	ots := httptest.NewServer(fo)
	t.Cleanup(ots.Close)
	o, err := NewHTTPOrigin(ots.URL+"/prefix?sig=s3cr3t-sig", nil)
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = io.Discard
	}
	s, err := New(Config{Origin: o, BlockSize: bs, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return fo, ts
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// A stream, a resumed stream, a range, the raw bytes and the manifest of a
// file at an HTTP origin are those of the same file served from a folder,
// but for the etag, which comes from the origin's validator.
func TestHTTPOriginServesLikeAFolder(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(3<<20+123, 1)
	writeFile(t, dir, "sub dir.bin", data)
	for _, lm := range []bool{false, true} {
		t.Run(fmt.Sprintf("lastModifiedOnly=%v", lm), func(t *testing.T) {
			fo, ts := startOrigin(t, dir, lm, 64<<10, nil)
			_, local := start(t, dir, 64<<10)

			r := readStream(t, get(t, sseURL(ts.URL, "sub dir.bin")).Body)
			if !bytes.Equal(r.data, data) || r.end == nil {
				t.Fatalf("stream from the origin: %d bytes (end %v), want the %d of the file", len(r.data), r.end != nil, len(data))
			}
			l := readStream(t, get(t, sseURL(local.URL, "sub dir.bin")).Body)
			if r.end.SHA256 != l.end.SHA256 || r.end.XXH3128 != l.end.XXH3128 {
				t.Errorf("end digests differ from the local file's: %+v, %+v", r.end, l.end)
			}
			if r.meta.ETag == l.meta.ETag {
				t.Errorf("etag %q is the local one: it must come from the origin's validator", r.meta.ETag)
			}
			// Every replica over the origin computes the same etag.
			_, ts2 := startOrigin(t, dir, lm, 64<<10, nil)
			if r2 := readStream(t, get(t, sseURL(ts2.URL, "sub dir.bin", "range=0-0")).Body); r2.meta.ETag != r.meta.ETag {
				t.Errorf("second replica's etag %q, first's %q", r2.meta.ETag, r.meta.ETag)
			}

			resumed := readStream(t, get(t, sseURL(ts.URL, "sub dir.bin", "v="+r.meta.ETag), "Last-Event-ID", "1048576").Body)
			if want := data[1<<20+64<<10:]; !bytes.Equal(resumed.data, want) || resumed.end == nil {
				t.Errorf("resumed stream: %d bytes, want %d", len(resumed.data), len(want))
			}
			gets := fo.count(http.MethodGet)
			ranged := readStream(t, get(t, sseURL(ts.URL, "sub dir.bin", "range=200000-300000")).Body)
			if want := data[3*64<<10 : 5*64<<10]; !bytes.Equal(ranged.data, want) {
				t.Errorf("ranged stream: %d bytes, want the %d of its blocks", len(ranged.data), len(want))
			}
			// One GET for the stream's blocks and the manifest's hashing
			// (the digests of a ranged stream), not one per block.
			if n := fo.count(http.MethodGet) - gets; n > 2 {
				t.Errorf("a 2-block ranged stream made %d GETs of the origin", n)
			}

			resp := get(t, ts.URL+"/files/sub%20dir.bin", "Range", "bytes=10-19")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
				t.Errorf("/files/ range: %s %q", resp.Status, body)
			}
			resp = get(t, ts.URL+"/manifest/sub%20dir.bin")
			body, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), l.end.SHA256) || !strings.Contains(string(body), r.meta.ETag) {
				t.Errorf("manifest: %s %.200s", resp.Status, body)
			}
		})
	}
}

// A file replaced at the origin is a new version: a pinned request is 412
// with the new etag, and a read of the old version fails as changed.
func TestHTTPOriginFileReplaced(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", randomBytes(1<<20, 2))
	_, ts := startOrigin(t, dir, false, 64<<10, nil)
	first := readStream(t, get(t, sseURL(ts.URL, "f.bin", "range=0-0")).Body)
	t.Logf("etag %q", first.meta.ETag)

	o, err := NewHTTPOrigin(ts.URL, nil) // the Ferry server is itself an HTTP origin of /files/
	if err != nil {
		t.Fatal(err)
	}
	obj, err := o.Open(context.Background(), "files/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	buf := make([]byte, 1000)
	if _, err := obj.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}

	later := time.Now().Add(time.Hour)
	writeFile(t, dir, "f.bin", randomBytes(1<<20, 3))
	os.Chtimes(filepath.Join(dir, "f.bin"), later, later)

	resp := get(t, sseURL(ts.URL, "f.bin", "v="+first.meta.ETag))
	if resp.StatusCode != http.StatusPreconditionFailed || resp.Header.Get("ETag") == `"`+first.meta.ETag+`"` || resp.Header.Get("ETag") == "" {
		t.Errorf("pinned to the old version: %s, ETag %q", resp.Status, resp.Header.Get("ETag"))
	}
	if _, err := obj.ReadAt(buf, 500<<10); !errors.Is(err, ErrOriginChanged) {
		t.Errorf("read of the old version elsewhere: %v, want ErrOriginChanged", err)
	}
	if obj.Unchanged() {
		t.Error("Unchanged after the origin changed")
	}
}

// The origin's failures are the client's statuses: a missing file 404, a
// denied one 403, an origin down or failing 503 with Retry-After. Neither
// the answers nor the log show the origin's signature.
func TestHTTPOriginErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", randomBytes(100<<10, 4))
	var log servertest.SyncBuffer
	fo, ts := startOrigin(t, dir, false, 64<<10, &log)
	cases := []struct {
		name   string
		status int // the origin's answer to every request
		path   string
		want   int
	}{
		{"missing", 0, "nope.bin", http.StatusNotFound},
		{"denied", http.StatusForbidden, "f.bin", http.StatusForbidden},
		{"unauthorized", http.StatusUnauthorized, "f.bin", http.StatusForbidden},
		{"failing", http.StatusBadGateway, "f.bin", http.StatusServiceUnavailable},
		{"overloaded", http.StatusTooManyRequests, "f.bin", http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fo.set(c.status)
			defer fo.set(0)
			for _, prefix := range []string{"/sse/", "/files/", "/manifest/"} {
				resp := get(t, ts.URL+prefix+c.path)
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != c.want {
					t.Errorf("%s: %s %s, want %d", prefix, resp.Status, body, c.want)
				}
				if c.want == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", prefix)
				}
				if strings.Contains(string(body), "s3cr3t") || strings.Contains(string(body), "127.0.0.1") {
					t.Errorf("%s: the answer names the origin: %s", prefix, body)
				}
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		o, err := NewHTTPOrigin("http://127.0.0.1:1/prefix/?sig=s3cr3t-sig", nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Origin: o, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ts := httptest.NewServer(s)
		defer ts.Close()
		resp := get(t, ts.URL+"/sse/f.bin")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("origin down: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
		}
	})
	if strings.Contains(log.String(), "s3cr3t") {
		t.Errorf("the log shows the origin's signature:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "origin") {
		t.Errorf("the log does not say the origin failed:\n%s", log.String())
	}
}

// A stream of an origin that fails mid-stream ends without an end event,
// so that the client resumes, and is logged as a read failure.
func TestHTTPOriginFailsMidStream(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f.bin", randomBytes(40<<20, 5))
	fo, ts := startOrigin(t, dir, false, 64<<10, nil)
	fo.mu.Lock()
	fo.cutAfter = 5 << 20
	fo.mu.Unlock()
	resp := get(t, sseURL(ts.URL, "f.bin"))
	lr := newLineReader(resp.Body)
	lr.until(t, "event: block")
	fo.set(http.StatusBadGateway) // the GET after the cut fails
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rest, []byte("event: "+chunker.EventEnd)) || len(rest) > 50<<20 {
		t.Errorf("a stream whose origin failed went on to its end (%d bytes)", len(rest))
	}
}
