package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/google/go-cmp/cmp"
	sse "github.com/tmaxmax/go-sse"
)

// start serves root with the given block size on a loopback httptest server.
func start(t *testing.T, root string, bs int) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{Root: root, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

// copyTestdata copies the sample files to a folder the test may change.
func copyTestdata(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../testdata", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sseURL(base, rel string, query ...string) string {
	segs := strings.Split(rel, "/")
	for i := range segs {
		segs[i] = url.PathEscape(segs[i])
	}
	u := base + "/sse/" + strings.Join(segs, "/")
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return u
}

func get(t *testing.T, u string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// result is a stream as a third-party parser (go-sse) sees it.
type result struct {
	meta      chunker.Meta
	offsets   []int64
	encodings []string // of the blocks, in order
	data      []byte   // the blocks, reassembled in order
	end       *chunker.End
}

// readStream parses an /sse/ response with go-sse's sse.Read, decodes and
// verifies every block, and checks the event framing on the way.
func readStream(t *testing.T, body io.Reader) result {
	t.Helper()
	var r result
	dec := chunker.NewDecoder()
	n := 0
	for ev, err := range sse.Read(body, &sse.ReadConfig{MaxEventSize: 64 << 20}) {
		if err != nil {
			t.Fatalf("sse.Read: %v", err)
		}
		switch n++; {
		case n == 1:
			if ev.Type != chunker.EventMeta || ev.LastEventID != "" {
				t.Fatalf("first event = %q (id %q), want meta without id", ev.Type, ev.LastEventID)
			}
			if err := json.Unmarshal([]byte(ev.Data), &r.meta); err != nil {
				t.Fatalf("meta: %v", err)
			}
		case ev.Type == chunker.EventBlock:
			if r.end != nil {
				t.Fatal("block after the end event")
			}
			f, err := chunker.ParseFrame([]byte(ev.Data))
			if err != nil {
				t.Fatalf("block %d: %v", n, err)
			}
			if ev.LastEventID != strconv.FormatInt(f.Offset, 10) {
				t.Fatalf("block at %d has id %q", f.Offset, ev.LastEventID)
			}
			raw, err := dec.Decode(f)
			if err != nil {
				t.Fatalf("block at %d: %v", f.Offset, err)
			}
			r.offsets = append(r.offsets, f.Offset)
			r.data = append(r.data, raw...)
			r.encodings = append(r.encodings, f.Encoding)
		case ev.Type == chunker.EventEnd:
			r.end = new(chunker.End)
			if err := json.Unmarshal([]byte(ev.Data), r.end); err != nil {
				t.Fatalf("end: %v", err)
			}
		default:
			t.Fatalf("unexpected event %q", ev.Type)
		}
	}
	return r
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testdataFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	filepath.WalkDir("../testdata", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel("../testdata", p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(files) < 6 {
		t.Fatalf("found %d testdata files, want the samples", len(files))
	}
	return files
}

func TestStreamReassemblesEveryTestdataFile(t *testing.T) {
	for _, bs := range []int{1 << 10, 256 << 10} {
		_, ts := start(t, "../testdata", bs)
		for _, rel := range testdataFiles(t) {
			for _, enc := range []string{"", "zstd", "gzip", "s2", "s2,zstd,gzip"} {
				t.Run(fmt.Sprintf("%d/%s/%s", bs, rel, enc), func(t *testing.T) {
					want, err := os.ReadFile(filepath.Join("../testdata", rel))
					if err != nil {
						t.Fatal(err)
					}
					resp := get(t, sseURL(ts.URL, rel, "encoding="+enc))
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d", resp.StatusCode)
					}
					r := readStream(t, resp.Body)
					if !bytes.Equal(r.data, want) {
						t.Fatalf("reassembled %d bytes differ from the %d-byte file", len(r.data), len(want))
					}
					compressed := 0
					for _, e := range r.encodings {
						if e != chunker.Identity && !slices.Contains(strings.Split(enc, ","), e) {
							t.Fatalf("a block in %s, which the client did not list in %q", e, enc)
						}
						if e != chunker.Identity {
							compressed++
						}
					}
					if rel == "nested/server log.txt" && enc != "" && compressed == 0 {
						t.Errorf("no block of %d of log lines was compressed with %q", len(r.encodings), enc)
					}
					if r.end == nil || r.end.SHA256 != sha(want) || r.end.Size != int64(len(want)) {
						t.Fatalf("end event = %+v, want sha256 %s", r.end, sha(want))
					}
					m, _ := manifest.Build(context.Background(), bytes.NewReader(want), rel, int64(len(want)), time.Time{}, bs)
					if r.end.XXH3128 != m.XXH3128 {
						t.Errorf("end xxh3_128 = %s, want %s", r.end.XXH3128, m.XXH3128)
					}
					if r.meta.Size != int64(len(want)) || r.meta.BlockSize != bs || r.meta.Start != 0 || r.meta.End != int64(len(want)) {
						t.Errorf("meta = %+v", r.meta)
					}
				})
			}
		}
	}
}

func TestStreamHeaders(t *testing.T) {
	_, ts := start(t, "../testdata", 1024)
	resp := get(t, sseURL(ts.URL, "one-byte.bin"))
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// HTTP/1.1 without chunks: one write per block, the body ends with the
	// connection.
	if len(resp.TransferEncoding) != 0 || !resp.Close || resp.ContentLength != -1 {
		t.Errorf("Transfer-Encoding %q, Close %v, Content-Length %d; want none, true, -1", resp.TransferEncoding, resp.Close, resp.ContentLength)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.HasPrefix(body, []byte("retry: 1500\nevent: meta\ndata: {")) {
		t.Errorf("stream starts %q, want the retry line then the meta event", body[:min(len(body), 40)])
	}
	if bytes.Contains(body, []byte("id: \n")) || bytes.Contains(body, []byte("id:\n")) {
		t.Error("stream has an empty id field")
	}
}

func TestLastEventIDAtEveryBlock(t *testing.T) {
	const bs = 64 << 10
	_, ts := start(t, "../testdata", bs)
	want, _ := os.ReadFile("../testdata/multi-block.bin")
	n := chunker.Count(int64(len(want)), bs)
	for i := range n {
		held := i * bs
		for _, how := range []string{"header", "query"} {
			t.Run(fmt.Sprintf("%d/%s", held, how), func(t *testing.T) {
				var resp *http.Response
				if how == "header" {
					resp = get(t, sseURL(ts.URL, "multi-block.bin"), "Last-Event-ID", strconv.FormatInt(held, 10))
				} else {
					resp = get(t, sseURL(ts.URL, "multi-block.bin", "lastEventId="+strconv.FormatInt(held, 10)))
				}
				if i == n-1 {
					if resp.StatusCode != http.StatusNoContent {
						t.Fatalf("resume after the last block: status %d, want 204", resp.StatusCode)
					}
					return
				}
				r := readStream(t, resp.Body)
				if len(r.offsets) == 0 || r.offsets[0] != held+bs || r.meta.Start != held+bs {
					t.Fatalf("resumed stream starts at %v (meta %d), want %d", r.offsets[:min(1, len(r.offsets))], r.meta.Start, held+bs)
				}
				if !bytes.Equal(r.data, want[held+bs:]) || r.end == nil || r.end.SHA256 != sha(want) {
					t.Fatal("resumed stream does not carry the rest of the file and its digest")
				}
			})
		}
	}
}

func TestHeaderLastEventIDWinsOverQuery(t *testing.T) {
	_, ts := start(t, "../testdata", 64<<10)
	resp := get(t, sseURL(ts.URL, "multi-block.bin", "lastEventId=0"), "Last-Event-ID", "655360")
	r := readStream(t, resp.Body)
	if r.meta.Start != 655360+65536 {
		t.Errorf("start = %d, want %d (the header's)", r.meta.Start, 655360+65536)
	}
}

func TestRanges(t *testing.T) {
	const bs = 1024
	_, ts := start(t, "../testdata", bs)
	want, _ := os.ReadFile("../testdata/multi-block.bin")
	size := int64(len(want))
	tests := []struct {
		name       string
		rng        string
		lastID     string
		start, end int64
	}{
		{"first byte", "0-0", "", 0, 1024},
		{"last byte", fmt.Sprintf("%d-%d", size-1, size-1), "", size / bs * bs, size},
		{"inside one block", "1500-1600", "", 1024, 2048},
		{"across blocks", "1000-5000", "", 0, 5120},
		{"open end", "999000-", "", 998400, size},
		{"suffix", "-10", "", size / bs * bs, size},
		{"range and resume inside it", "0-10239", "4096", 5120, 10240},
		{"resume before the range", "8192-10239", "0", 8192, 10240},
	}
	for _, tt := range tests {
		for _, how := range []string{"header", "query"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				var hdr, q []string
				if how == "header" {
					hdr = append(hdr, "Range", "bytes="+tt.rng)
				} else {
					q = append(q, "range="+tt.rng)
				}
				if tt.lastID != "" {
					hdr = append(hdr, "Last-Event-ID", tt.lastID)
				}
				resp := get(t, sseURL(ts.URL, "multi-block.bin", q...), hdr...)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200 (never 206)", resp.StatusCode)
				}
				r := readStream(t, resp.Body)
				if r.meta.Start != tt.start || r.meta.End != tt.end {
					t.Errorf("meta span = [%d,%d), want [%d,%d)", r.meta.Start, r.meta.End, tt.start, tt.end)
				}
				if !bytes.Equal(r.data, want[tt.start:tt.end]) {
					t.Errorf("stream carries %d bytes, want bytes [%d,%d)", len(r.data), tt.start, tt.end)
				}
				if r.end == nil || r.end.SHA256 != sha(want) {
					t.Error("ranged stream lacks the whole-file end event")
				}
			})
		}
	}
}

func TestResumeAtEndOfRangeIs204(t *testing.T) {
	_, ts := start(t, "../testdata", 1024)
	for _, hdr := range [][]string{
		{"Range", "bytes=0-2047", "Last-Event-ID", "1024"},
		{"Range", "bytes=0-2047", "Last-Event-ID", "4096"},
		{"Last-Event-ID", "999424"},
	} {
		if resp := get(t, sseURL(ts.URL, "multi-block.bin"), hdr...); resp.StatusCode != http.StatusNoContent {
			t.Errorf("%v: status %d, want 204", hdr, resp.StatusCode)
		}
	}
}

func TestChangedFileIs412(t *testing.T) {
	root := copyTestdata(t)
	_, ts := start(t, root, 1024)
	resp := get(t, sseURL(ts.URL, "multi-block.bin"))
	etag := readStream(t, resp.Body).meta.ETag
	if resp.Header.Get("ETag") != `"`+etag+`"` {
		t.Errorf("ETag header %q, want the meta etag quoted", resp.Header.Get("ETag"))
	}
	pinned := func() []*http.Response {
		return []*http.Response{
			get(t, sseURL(ts.URL, "multi-block.bin", "v="+etag)),
			get(t, sseURL(ts.URL, "multi-block.bin"), "If-Match", `"`+etag+`"`),
			get(t, sseURL(ts.URL, "multi-block.bin"), "If-Match", etag, "Last-Event-ID", "1024"),
			get(t, ts.URL+"/manifest/multi-block.bin", "If-Match", `"`+etag+`"`),
		}
	}
	for i, r := range pinned() {
		if r.StatusCode != http.StatusOK {
			t.Errorf("request %d pinned to the current version: status %d, want 200", i, r.StatusCode)
		}
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "multi-block.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	for i, r := range pinned() {
		if r.StatusCode != http.StatusPreconditionFailed {
			t.Errorf("request %d pinned to the old version: status %d, want 412", i, r.StatusCode)
		}
		// The 412 names the version the server has now.
		if got := r.Header.Get("ETag"); got == "" || got == `"`+etag+`"` {
			t.Errorf("request %d: 412 with ETag %q, want the new version's", i, got)
		}
	}
	if r := get(t, sseURL(ts.URL, "multi-block.bin"), "If-Match", "*"); r.StatusCode != http.StatusOK {
		t.Errorf("If-Match: * = %d, want 200", r.StatusCode)
	}
}

func TestFileChangedMidStream(t *testing.T) {
	root := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: more than the socket buffers
	writeFile(t, root, "big.bin", big)
	_, ts := start(t, root, 1024)
	resp := get(t, sseURL(ts.URL, "big.bin"))
	br := newLineReader(resp.Body)
	br.until(t, "event: block") // the stream is under way
	f, err := os.OpenFile(filepath.Join(root, "big.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
	rest, _ := io.ReadAll(br)
	if bytes.Contains(rest, []byte("event: end")) {
		t.Fatal("a stream whose file changed ended with an end event")
	}
	if n := bytes.Count(rest, []byte("event: block")); n >= len(big)/1024-1 {
		t.Fatalf("stream sent %d blocks after the change", n)
	}
}

// lineReader reads a response up to a line, then hands the rest on.
type lineReader struct{ r io.Reader }

func newLineReader(r io.Reader) *lineReader { return &lineReader{r} }

func (l *lineReader) Read(p []byte) (int, error) { return l.r.Read(p) }

func (l *lineReader) until(t *testing.T, line string) {
	t.Helper()
	var got []byte
	b := make([]byte, 1)
	for !bytes.Contains(got, []byte(line)) {
		if _, err := io.ReadFull(l.r, b); err != nil {
			t.Fatalf("stream ended before %q", line)
		}
		got = append(got, b[0])
	}
}

func TestBadInput(t *testing.T) {
	root := copyTestdata(t)
	outside := t.TempDir()
	writeFile(t, outside, "secret.txt", []byte("secret"))
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("multi-block.bin", filepath.Join(root, "inside-link.bin")); err != nil {
		t.Fatal(err)
	}
	_, ts := start(t, root, 1024)
	tests := []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"ok", "/sse/multi-block.bin", nil, 200},
		{"symlink inside the root", "/sse/inside-link.bin", nil, 200},
		{"unknown codec ignored", "/sse/one-byte.bin?encoding=br,lz4", nil, 200},
		{"last-event-id non-numeric", "/sse/multi-block.bin", []string{"Last-Event-ID", "abc"}, 400},
		{"last-event-id negative", "/sse/multi-block.bin", []string{"Last-Event-ID", "-1024"}, 400},
		{"last-event-id past the end", "/sse/multi-block.bin", []string{"Last-Event-ID", "10240000"}, 400},
		{"last-event-id off a block boundary", "/sse/multi-block.bin", []string{"Last-Event-ID", "1000"}, 400},
		{"last-event-id overflowing", "/sse/multi-block.bin", []string{"Last-Event-ID", "99999999999999999999999"}, 400},
		{"last-event-id unicode digits", "/sse/multi-block.bin?lastEventId=%EF%BC%91", nil, 400},
		{"last-event-id on an empty file", "/sse/empty.bin", []string{"Last-Event-ID", "0"}, 400},
		{"range malformed", "/sse/multi-block.bin", []string{"Range", "bytes=x-y"}, 400},
		{"range reversed", "/sse/multi-block.bin?range=9-1", nil, 400},
		{"range unsatisfiable", "/sse/multi-block.bin", []string{"Range", "bytes=1000000-"}, 416},
		{"range of an empty file", "/sse/empty.bin", []string{"Range", "bytes=0-"}, 416},
		{"several ranges", "/sse/multi-block.bin", []string{"Range", "bytes=0-1,4-5"}, 416},
		{"unknown file", "/sse/nope.bin", nil, 404},
		{"directory", "/sse/nested", nil, 404},
		{"root", "/sse/", nil, 404},
		{"dot dot", "/sse/../server/server.go", nil, 404},
		{"encoded dot dot", "/sse/%2e%2e/%2e%2e/etc/passwd", nil, 404},
		{"encoded slash", "/sse/nested%2fserver%20log.txt", nil, 404},
		{"backslash", "/sse/nested%5cserver%20log.txt", nil, 404},
		{"absolute", "/sse//etc/passwd", nil, 404},
		{"nul", "/sse/multi-block.bin%00.txt", nil, 404},
		{"overlong utf-8", "/sse/%c0%ae%c0%ae/etc/passwd", nil, 404},
		{"symlink out of the root", "/sse/escape.txt", nil, 404},
		{"files: symlink out", "/files/escape.txt", nil, 404},
		{"manifest: dot dot", "/manifest/%2e%2e/x", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
			req.URL.Opaque = tt.path // send the path exactly as written
			if p, q, ok := strings.Cut(tt.path, "?"); ok {
				req.URL.Opaque, req.URL.RawQuery = p, q
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s: status %d, want %d (body %.200q)", tt.path, resp.StatusCode, tt.status, body)
			}
			if bytes.Contains(body, []byte("secret")) || bytes.Contains(body, []byte(outside)) || bytes.Contains(body, []byte(root)) {
				t.Errorf("response reveals something outside the root: %.200q", body)
			}
			if tt.status >= 400 && !bytes.Contains(body, []byte(`"error"`)) {
				t.Errorf("error response has no message: %.200q", body)
			}
		})
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "big.bin", bytes.Repeat([]byte("x"), 16<<20))
	s, ts := start(t, root, 1024)
	resp := get(t, sseURL(ts.URL, "big.bin"))
	br := newLineReader(resp.Body)
	br.until(t, "event: block")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	rest, _ := io.ReadAll(br)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if bytes.Contains(rest, []byte("event: end")) {
		t.Error("a stream cut by shutdown sent an end event")
	}
	if r := get(t, sseURL(ts.URL, "big.bin")); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("stream during shutdown: status %d Retry-After %q, want 503 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

func TestManifestEndpoint(t *testing.T) {
	_, ts := start(t, "../testdata", 1024)
	resp := get(t, ts.URL+"/manifest/nested/server%20log.txt")
	got, err := manifest.Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("../testdata/nested/server log.txt")
	info, _ := os.Stat("../testdata/nested/server log.txt")
	want, _ := manifest.Build(context.Background(), bytes.NewReader(data), "nested/server log.txt", info.Size(), info.ModTime(), 1024)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest mismatch (-want +got):\n%s", diff)
	}
	// A whole stream fills the same cache entry with the same manifest.
	s2, ts2 := start(t, "../testdata", 1024)
	readStream(t, get(t, sseURL(ts2.URL, "nested/server log.txt")).Body)
	f, err := s2.open(httptest.NewRequest("GET", "/sse/nested/server%20log.txt", nil), "/sse/")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cached, ok := s2.cache.Lookup(f.key(1024))
	if !ok {
		t.Fatal("a whole stream did not cache the manifest")
	}
	if diff := cmp.Diff(want, cached); diff != "" {
		t.Errorf("manifest cached by the stream differs (-want +got):\n%s", diff)
	}
}

func TestFilesEndpoint(t *testing.T) {
	_, ts := start(t, "../testdata", 1024)
	want, _ := os.ReadFile("../testdata/multi-block.bin")
	resp := get(t, ts.URL+"/files/multi-block.bin", "Range", "bytes=100-199")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[100:200]) {
		t.Fatalf("range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q is not quoted", etag)
	}
	if r := get(t, ts.URL+"/files/multi-block.bin", "Range", "bytes=100-199", "If-Range", etag); r.StatusCode != http.StatusPartialContent {
		t.Errorf("If-Range with the current etag: %d, want 206", r.StatusCode)
	}
	if r := get(t, ts.URL+"/files/multi-block.bin", "Range", "bytes=100-199", "If-Range", `"old"`); r.StatusCode != http.StatusOK {
		t.Errorf("If-Range with another etag: %d, want 200", r.StatusCode)
	}
}

func TestListFiles(t *testing.T) {
	_, ts := start(t, "../testdata", 1024)
	var entries []Entry
	if err := json.NewDecoder(get(t, ts.URL+"/api/files").Body).Decode(&entries); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
		if e.ETag == "" {
			t.Errorf("%s has no etag", e.Path)
		}
	}
	if diff := cmp.Diff(testdataFiles(t), paths); diff != "" {
		t.Errorf("listing mismatch (-want +got):\n%s", diff)
	}
}

func TestHeartbeatWhileWaitingForDigests(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(512 << 20) // hashing it takes far longer than one heartbeat
	f.Close()
	s, err := New(Config{Root: root, BlockSize: 1 << 20, Heartbeat: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	// A ranged stream of one block: its end event waits for the digests.
	resp := get(t, sseURL(ts.URL, "sparse.bin", "range=0-0"))
	body, _ := io.ReadAll(resp.Body)
	ping := bytes.Index(body, []byte("\n: ping\n\n"))
	end := bytes.Index(body, []byte("event: end\n"))
	if ping < 0 || end < 0 || ping > end {
		t.Fatalf("no ping before the end event (ping at %d, end at %d)", ping, end)
	}
}

func TestOversizedRequests(t *testing.T) {
	s, err := New(Config{Root: "../testdata", BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := s.HTTPServer("127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) // exits at Close below
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	huge := strings.Repeat("a", 200<<10)
	tests := []struct {
		name   string
		url    string
		header []string
		want   int
	}{
		{"huge header", base + "/sse/one-byte.bin", []string{"X-Padding", huge}, http.StatusRequestHeaderFieldsTooLarge},
		{"huge query", base + "/sse/one-byte.bin?x=" + huge, nil, http.StatusRequestHeaderFieldsTooLarge},
		{"huge Last-Event-ID", base + "/sse/multi-block.bin", []string{"Last-Event-ID", strings.Repeat("9", 10000)}, http.StatusBadRequest},
		{"huge Range", base + "/sse/multi-block.bin", []string{"Range", "bytes=" + strings.Repeat("0-1,", 2000) + "0-1"}, http.StatusRequestedRangeNotSatisfiable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status(t, tt.url, tt.header...); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
}
