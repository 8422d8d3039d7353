package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
	"github.com/zeebo/xxh3"
)

// The browser tests run node scripts under test/ that drive Debian's
// chromium with playwright-core against a real server, through a
// fault-injecting proxy where the test needs one. They need node, the
// packages of package-lock.json (npm ci) and /usr/bin/chromium; without
// them they skip, except in CI (CI=true), where they fail.

const blockSize = 256 << 10

// chromium is the browser the tests drive; never a downloaded build.
var chromium = envOr("FERRY_CHROMIUM", "/usr/bin/chromium")

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// need skips the test when a tool it needs is missing, or fails it in CI.
func need(t *testing.T, browser bool) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs npm)")
	}
	if browser {
		if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
			missing = append(missing, "server/web/node_modules (cd server/web && npm ci)")
		}
		if _, err := os.Stat(chromium); err != nil {
			missing = append(missing, chromium+" (apt-get install chromium)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "browser test needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// logBuffer collects the server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// streamLog is the server's log line for one /sse/ response.
type streamLog struct {
	Path    string `json:"path"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Blocks  int64  `json:"blocks"`
	Outcome string `json:"outcome"`
}

// streams returns the stream log lines for path, in the order they ended.
func (l *logBuffer) streams(path string) []streamLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []streamLog
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			streamLog
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "stream" && line.Path == path {
			out = append(out, line.streamLog)
		}
	}
	return out
}

// waitStreams waits until the server has logged n streams of path.
func (l *logBuffer) waitStreams(t *testing.T, path string, n int) []streamLog {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := l.streams(path)
		if len(s) >= n || time.Now().After(deadline) {
			return s
		}
		<-tick.C
	}
}

// requestLog is the server's access log line for one request.
type requestLog struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
}

// requests returns the access log lines of requests for path.
func (l *logBuffer) requests(path string) []requestLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []requestLog
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			requestLog
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" && line.Path == path {
			out = append(out, line.requestLog)
		}
	}
	return out
}

// site is a server on 127.0.0.1 for one test, behind a proxy when plan is
// not nil; base is the URL the browser opens.
type site struct {
	root      string
	base      string
	blockSize int
	log       *logBuffer
	proxy     *servertest.Proxy
}

// siteOptions are what a test may ask of its site beyond the files.
type siteOptions struct {
	plan      func(n int) servertest.Fault    // a fault-injecting proxy in front of the server
	blockSize int                             // default blockSize
	signKey   []byte                          // server.Config.SignKey: signed URLs, no tokens
	tls       bool                            // HTTPS with HTTP/2, on httptest's certificate
	wrap      func(http.Handler) http.Handler // around the server, to watch its requests
	heartbeat time.Duration                   // server.Config.Heartbeat; default the server's
}

func startSite(t *testing.T, files map[string][]byte, plan func(n int) servertest.Fault) *site {
	t.Helper()
	return startSiteWith(t, files, siteOptions{plan: plan})
}

func startSiteWith(t *testing.T, files map[string][]byte, o siteOptions) *site {
	t.Helper()
	if o.blockSize == 0 {
		o.blockSize = blockSize
	}
	root := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lb := &logBuffer{}
	srv, err := server.New(server.Config{
		Root: root, BlockSize: o.blockSize, Retry: 250 * time.Millisecond, SignKey: o.signKey, Heartbeat: o.heartbeat,
		Logger: slog.New(slog.NewJSONHandler(lb, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = srv
	if o.wrap != nil {
		h = o.wrap(h)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = slog.NewLogLogger(slog.NewJSONHandler(lb, nil), slog.LevelWarn) // e.g. a preconnect never used
	if o.tls {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	s := &site{root: root, base: ts.URL, blockSize: o.blockSize, log: lb}
	if o.plan != nil {
		p, err := servertest.NewProxy(ts.Listener.Addr().String(), o.plan)
		if err != nil {
			t.Fatal(err)
		}
		s.proxy = p
		s.base = strings.Split(ts.URL, "://")[0] + "://" + p.Addr
	}
	t.Cleanup(func() {
		if s.proxy != nil {
			s.proxy.Close()
		}
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
	})
	return s
}

// node runs test/<script> with args and decodes the JSON it prints into out.
func node(t *testing.T, out any, script string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join("test", script)}, args...)...)
	cmd.Env = append(os.Environ(), "FERRY_CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("node %s: %.1fs", script, time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("node %s printed %q: %v\nstderr:\n%s", script, stdout.String(), err, stderr.String())
	}
}

// sample returns n bytes from a fixed seed: the same on every run.
func sample(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), 'f', 'e', 'r', 'r', 'y'}).Read(b)
	return b
}

// text returns about n bytes of compressible log lines.
func text(n int) []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-11-23T10:%02d:%02d.%06dZ INFO ferry: path=/sse/file-%d.bin bytes=%d msg=%q\n",
			i/60%60, i%60, r.IntN(1e6), r.IntN(40), r.IntN(1<<28), []string{"stream complete", "client gone", "resumed"}[r.IntN(3)])
	}
	return b.Bytes()[:n]
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// card is what the test scripts report of a download card on the page.
type card struct {
	State    string     `json:"state"`
	Message  string     `json:"message"`
	Notice   string     `json:"notice"`
	Error    string     `json:"error"`
	SHA256   string     `json:"sha256"`
	Local    string     `json:"sha256Local"`
	Stored   string     `json:"stored"` // SHA-256 of the bytes in OPFS
	Log      []logEntry `json:"log"`
	Progress struct {
		Bytes      int64  `json:"bytes"`
		Reconnects int    `json:"reconnects"`
		Corrupt    int    `json:"corrupt"`
		Duplicates int    `json:"duplicates"`
		Reused     int    `json:"reused"`
		Streams    int    `json:"streams"`
		Storage    string `json:"storage"`
	} `json:"progress"`
}

// logEntry is one line of a download's history in the page.
type logEntry struct {
	Kind   string `json:"kind"`
	Text   string `json:"text"`
	Start  int64  `json:"start"`
	Last   int64  `json:"last"`
	Offset int64  `json:"offset"`
}

func (c card) entries(kind string) []logEntry {
	var out []logEntry
	for _, e := range c.Log {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// checkIdentical fails unless the page verified the file, shows its SHA-256,
// computed the same itself, and OPFS holds exactly its bytes.
func checkIdentical(t *testing.T, name string, c card, want []byte) {
	t.Helper()
	w := sha(want)
	if c.State != "done" {
		t.Errorf("%s: state %q (message %q), want done", name, c.State, c.Message)
	}
	if c.Stored != w {
		t.Errorf("%s: SHA-256 of the bytes in OPFS = %s, want %s", name, c.Stored, w)
	}
	if c.SHA256 != w {
		t.Errorf("%s: page shows SHA-256 %s, want %s", name, c.SHA256, w)
	}
	if c.Local != w {
		t.Errorf("%s: SHA-256 computed in the page = %s, want %s", name, c.Local, w)
	}
}

// blockBytes is the number of file bytes in n blocks from offset start.
func blockBytes(start, n, size int64) int64 {
	return min(n*blockSize, size-start)
}

func TestBrowserDownload(t *testing.T) {
	need(t, true)
	files := map[string][]byte{
		"sample.bin":        sample(1, 5<<20+1000), // a short last block
		"server log.txt":    text(3 << 20),         // compressible: gzip blocks
		"hello wörld ñ.txt": []byte("hello, wörld\n"),
		"empty.bin":         {},
	}
	s := startSite(t, files, nil)
	var got map[string]card
	names := []string{"sample.bin", "server log.txt", "hello wörld ñ.txt", "empty.bin"}
	node(t, &got, "download.mjs", append([]string{s.base}, names...)...)
	for _, name := range names {
		c := got[name]
		checkIdentical(t, name, c, files[name])
		if c.Progress.Storage != "opfs" {
			t.Errorf("%s: storage %q, want opfs", name, c.Progress.Storage)
		}
		if c.Progress.Corrupt != 0 || c.Progress.Duplicates != 0 {
			t.Errorf("%s: %d corrupt and %d duplicate blocks on a clean link, want 0", name, c.Progress.Corrupt, c.Progress.Duplicates)
		}
	}
	for _, st := range s.log.streams("server log.txt") {
		if st.Outcome != "complete" {
			t.Errorf("server log.txt: stream outcome %q, want complete", st.Outcome)
		}
	}
}

func TestBrowserCutsResumeAtNextBlock(t *testing.T) {
	need(t, true)
	data := sample(2, 6<<20)
	const cutAt = 1_000_000 // bytes of each connection: every stream is cut
	s := startSite(t, map[string][]byte{"cut.bin": data}, func(int) servertest.Fault {
		return servertest.Fault{CutAt: cutAt}
	})
	var c card
	node(t, &c, "cuts.mjs", s.base, "cut.bin")
	checkIdentical(t, "cut.bin", c, data)
	if c.Progress.Reconnects < 3 {
		t.Errorf("%d reconnects, want at least 3 (a cut every %d bytes of a %d-byte file)", c.Progress.Reconnects, cutAt, len(data))
	}
	if c.Progress.Duplicates != 0 || c.Progress.Corrupt != 0 {
		t.Errorf("%d duplicate and %d corrupt blocks, want 0: no block is sent twice", c.Progress.Duplicates, c.Progress.Corrupt)
	}

	// Each stream the page saw after a cut starts at the block after the last
	// one it received, and the server's log agrees, stream by stream.
	seen := c.entries("stream")
	if len(seen) < 2 {
		t.Fatalf("page saw %d streams, want several", len(seen))
	}
	for i, e := range seen[1:] {
		want := e.Last + blockSize // Last is -1 before the first block
		if e.Last < 0 {
			want = 0
		}
		if e.Start != want {
			t.Errorf("stream %d starts at %d, want %d: the block after the last one received (%d)", i+2, e.Start, want, e.Last)
		}
	}
	// The server started each of its streams where the page asked: at a
	// block the page saw a stream start at. (It may have started more
	// streams than the page saw: Chromium can drop a response's buffered
	// events when the connection fails under it, and then asks again from
	// the same block.)
	asked := map[int64]bool{}
	for _, e := range seen {
		asked[e.Start] = true
	}
	logged := s.log.waitStreams(t, "cut.bin", len(seen))
	if len(logged) < len(seen) {
		t.Fatalf("server logged %d streams of cut.bin, the page saw %d", len(logged), len(seen))
	}
	complete := false
	for i, st := range logged {
		if !asked[st.Start] {
			t.Errorf("server stream %d starts at %d, where the page never asked for one; page streams: %+v", i+1, st.Start, seen)
		}
		if st.Start == seen[len(seen)-1].Start && st.Outcome == "complete" {
			complete = true
		}
	}
	if !complete {
		t.Errorf("no stream from %d ended complete; server: %+v", seen[len(seen)-1].Start, logged)
	}
}

func TestBrowserReloadResumesFromOPFS(t *testing.T) {
	need(t, true)
	data := sample(3, 8<<20)
	size := int64(len(data))
	// Throttled, so that the page can be reloaded half way.
	s := startSite(t, map[string][]byte{"reload.bin": data}, func(int) servertest.Fault {
		return servertest.Fault{BytesPerSecond: 3 << 20}
	})
	var c struct {
		card
		Before int64 `json:"before"` // verified bytes just before the reload
	}
	node(t, &c, "reload.mjs", s.base, "reload.bin")
	checkIdentical(t, "reload.bin", c.card, data)
	if c.Before < size/2 || c.Before >= size {
		t.Fatalf("reloaded with %d of %d bytes verified, want about half", c.Before, size)
	}
	if len(c.entries("resume")) != 1 {
		t.Errorf("page log has %d resume entries, want 1: %+v", len(c.entries("resume")), c.Log)
	}
	// The first stream is the one the reload interrupted; the streams after
	// it send at most the missing part and one block.
	logged := s.log.waitStreams(t, "reload.bin", 2)
	if len(logged) < 2 {
		t.Fatalf("server logged %d streams, want the one before the reload and the ones after: %+v", len(logged), logged)
	}
	if logged[0].Start != 0 {
		t.Errorf("first stream starts at %d, want 0", logged[0].Start)
	}
	var after int64
	for _, st := range logged[1:] {
		after += blockBytes(st.Start, st.Blocks, size)
	}
	if limit := size - c.Before + blockSize; after > limit {
		t.Errorf("after the reload the server sent %d bytes of blocks, want at most %d (the missing %d and one block)", after, limit, size-c.Before)
	}
	t.Logf("reloaded at %d of %d bytes; %d bytes of blocks served after the reload", c.Before, size, after)
}

func TestBrowserCorruptBlockRefetched(t *testing.T) {
	need(t, true)
	data := sample(4, 2<<20)
	// Flip a bit 1.3 MB into every connection: inside the base64 of the
	// fourth block of a stream. Page assets are far smaller.
	s := startSite(t, map[string][]byte{"flip.bin": data}, func(int) servertest.Fault {
		return servertest.Fault{FlipAt: 1_300_000}
	})
	var c card
	node(t, &c, "corrupt.mjs", s.base, "flip.bin")
	checkIdentical(t, "flip.bin", c, data)
	bad := c.entries("corrupt")
	if len(bad) == 0 || c.Progress.Corrupt != len(bad) {
		t.Fatalf("page detected %d corrupt blocks (log: %d), want at least 1", c.Progress.Corrupt, len(bad))
	}
	// Each bad block is fetched again: the next stream starts at it.
	logged := s.log.waitStreams(t, "flip.bin", len(bad)+1)
	starts := map[int64]bool{}
	for _, st := range logged {
		starts[st.Start] = true
	}
	for _, b := range bad {
		if !starts[b.Offset] {
			t.Errorf("block at %d failed verification but no stream restarted there; streams: %+v", b.Offset, logged)
		}
	}
}

// streamHold holds the response to the first request for path after some
// bytes of its body, until the client leaves: a stream that cannot end, so
// that the page can be paused before the end whatever the machine's load.
// (A proxy's StallAt counts the bytes of a connection, which keep-alive
// may have used for other responses first.)
type streamHold struct {
	path  string
	after int64 // bytes of the body that pass

	mu        sync.Mutex
	done      bool // the first request came
	held      bool // and its response was held
	abandoned bool // or its client left before the handler was done
}

func (sh *streamHold) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sh.mu.Lock()
		first := r.URL.Path == sh.path && !sh.done
		sh.done = sh.done || first
		sh.mu.Unlock()
		if !first {
			h.ServeHTTP(w, r)
			return
		}
		hw := &holdWriter{ResponseWriter: w, left: sh.after, gone: r.Context().Done(), hold: sh}
		h.ServeHTTP(hw, r)
		sh.mu.Lock()
		sh.abandoned = r.Context().Err() != nil || hw.failed
		sh.mu.Unlock()
	})
}

// holdWriter passes writes until the one that would go past its bytes,
// which waits for the client to leave and fails.
type holdWriter struct {
	http.ResponseWriter
	left   int64
	gone   <-chan struct{}
	hold   *streamHold
	failed bool // a write failed: the client left
}

func (hw *holdWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > hw.left {
		hw.hold.mu.Lock()
		hw.hold.held = true
		hw.hold.mu.Unlock()
		<-hw.gone
		return 0, http.ErrAbortHandler
	}
	hw.left -= int64(len(p))
	n, err := hw.ResponseWriter.Write(p)
	hw.failed = hw.failed || err != nil
	return n, err
}

func (hw *holdWriter) Flush() { http.NewResponseController(hw.ResponseWriter).Flush() }

func (hw *holdWriter) Unwrap() http.ResponseWriter { return hw.ResponseWriter }

// wasHeld reports whether the response was held.
func (sh *streamHold) wasHeld() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.held
}

// interrupted reports whether the first response did not reach its end:
// it was held, or the page closed it sooner (a pause that came while the
// worker kept up with the network, before the stream reached the hold).
func (sh *streamHold) interrupted() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.held || sh.abandoned
}

func TestBrowserErrorMessages(t *testing.T) {
	need(t, true)
	changing := sample(5, 4<<20)
	// The first stream of changing.bin is held after as many bytes as the
	// file has, some 75 % of the stream in base64: the page pauses past
	// half and before the end, however far behind the network it falls.
	hold := &streamHold{path: chunker.PathSSE + "changing.bin", after: int64(len(changing))}
	s := startSiteWith(t, map[string][]byte{"gone.bin": sample(6, 1<<20), "changing.bin": changing}, siteOptions{wrap: hold.wrap})
	var got struct {
		Gone    card `json:"gone"`
		Changed card `json:"changed"`
	}
	node(t, &got, "errors.mjs", s.base, s.root, "gone.bin", "changing.bin")

	if got.Gone.State != "error" || got.Gone.Error != "not-found" || !strings.Contains(got.Gone.Message, "not on the server (404)") {
		t.Errorf("gone.bin: state %q, error %q, message %q; want error not-found saying it is not on the server (404)",
			got.Gone.State, got.Gone.Error, got.Gone.Message)
	}

	// The second half changed while the download was paused: the page says
	// so, keeps the first half (and drops what it had of the second) and
	// ends with the new file.
	for i := len(changing) / 2; i < len(changing); i++ {
		changing[i] ^= 0x5a
	}
	c := got.Changed
	checkIdentical(t, "changing.bin", c, changing)
	if !strings.Contains(c.Notice, "changed on the server") {
		t.Errorf("changing.bin: notice %q, want it to say the file changed on the server; log: %+v", c.Notice, c.Log)
	}
	if !hold.wasHeld() {
		// The page paused before the server reached the hold: still a
		// pause mid-stream, which the notice above proves. (Failing here
		// made the test race the page's pause under load.)
		t.Logf("changing.bin: the page paused before the stream reached its hold")
	}
	// Paused past half, it had every block of the first half, and kept them.
	if want := len(changing) / 2 / blockSize; c.Progress.Reused != want {
		t.Errorf("changing.bin: reused %d blocks, want %d: the unchanged first half", c.Progress.Reused, want)
	}
	// One change is one restart, after one manifest request.
	if n := len(c.entries("changed")); n != 1 {
		t.Errorf("changing.bin: %d changed entries in the page's log, want 1: %+v", n, c.Log)
	}
	if n := len(s.log.requests(chunker.PathManifest + "changing.bin")); n != 1 {
		t.Errorf("changing.bin: %d manifest requests, want 1", n)
	}
}

// subPath serves a site under prefix ("/ferry/"), as a proxy's
// location /ferry/ { proxy_pass http://site/; } does: a ReverseProxy that
// strips the prefix from every request, and 404 for every path outside it.
// It records the paths asked for, inside and outside.
type subPath struct {
	prefix string
	proxy  *httputil.ReverseProxy

	mu      sync.Mutex
	inside  map[string]int // by path as the browser asked, prefix included
	outside []string
}

func newSubPath(t *testing.T, site, prefix string) *subPath {
	t.Helper()
	target, err := url.Parse(site)
	if err != nil {
		t.Fatal(err)
	}
	sp := &subPath{prefix: prefix, inside: map[string]int{}}
	sp.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = "/" + strings.TrimPrefix(r.In.URL.Path, prefix)
			r.Out.URL.RawPath = ""
		},
		ErrorLog: log.New(io.Discard, "", 0), // a stream the page closes is an error to it
	}
	return sp
}

func (sp *subPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sp.mu.Lock()
	in := strings.HasPrefix(r.URL.Path, sp.prefix)
	if in {
		sp.inside[r.URL.Path]++
	} else {
		sp.outside = append(sp.outside, r.URL.Path)
	}
	sp.mu.Unlock()
	if !in {
		http.NotFound(w, r)
		return
	}
	sp.proxy.ServeHTTP(w, r)
}

func (sp *subPath) asked() (inside map[string]int, outside []string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return maps.Clone(sp.inside), slices.Clone(sp.outside)
}

// TestBrowserUnderSubPath serves the site under /ferry/ through a reverse
// proxy that strips the prefix and answers 404 anywhere else. The page,
// opened at /ferry/ with a link to one file after the # (as the server
// knows it, /sse/<path>), lists the files and downloads that one and
// another from the list, paused at half and resumed (which asks the
// manifest); both end byte-identical, and nothing was asked outside /ferry/.
func TestBrowserUnderSubPath(t *testing.T) {
	need(t, true)
	const listed, linked, prefix = "listed.bin", "linked file.bin", "/ferry/"
	files := map[string][]byte{listed: sample(15, 4<<20), linked: sample(16, 1<<20+7), "other.txt": []byte("other\n")}
	// listed's first stream is held past half, as in TestBrowserErrorMessages.
	hold := &streamHold{path: chunker.PathSSE + listed, after: int64(len(files[listed]))}
	s := startSiteWith(t, files, siteOptions{wrap: hold.wrap})
	sp := newSubPath(t, s.base, prefix)
	ts := httptest.NewServer(sp)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	var got struct {
		Files  []string `json:"files"`
		Listed card     `json:"listed.bin"`
		Linked card     `json:"linked file.bin"`
	}
	node(t, &got, "subpath.mjs", ts.URL+strings.TrimSuffix(prefix, "/"), listed, linked)

	if want := slices.Sorted(maps.Keys(files)); !slices.Equal(slices.Sorted(slices.Values(got.Files)), want) {
		t.Errorf("the page lists %q, want %q", got.Files, want)
	}
	checkIdentical(t, listed, got.Listed, files[listed])
	checkIdentical(t, linked, got.Linked, files[linked])
	if !hold.interrupted() {
		t.Errorf("%s: the first stream reached its end before the pause", listed)
	}
	inside, outside := sp.asked()
	if len(outside) != 0 {
		t.Errorf("the page asked for %q outside %s", outside, prefix)
	}
	for _, p := range []string{"", "style.css", "app.js", "ferry.js", "wire.js", "storage.js", "ferry-worker.js", "hashes.js",
		"api/files", "sse/" + listed, "manifest/" + listed, "sse/" + linked} {
		if inside[prefix+p] == 0 {
			t.Errorf("no request for %s%s; asked: %v", prefix, p, inside)
		}
	}
}

// TestHashBundleMatchesGo checks the bundled hash-wasm against zeebo/xxh3
// and crypto/sha256, the server's hashes, on inputs around xxh3's internal
// sizes.
func TestHashBundleMatchesGo(t *testing.T) {
	need(t, false)
	var in bytes.Buffer
	var want []string
	for _, n := range []int{0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1023, 1024, 1025, 4096, 65537, blockSize} {
		b := sample(uint64(n), n)
		fmt.Fprintf(&in, "x%x\n", b)
		want = append(want, goHashes(b))
	}
	cmd := exec.CommandContext(t.Context(), "node", filepath.Join("test", "hashes.mjs"))
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node test/hashes.mjs: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(want) {
		t.Fatalf("node printed %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("input %d: hash-wasm = %s, want (Go) %s", i, got[i], want[i])
		}
	}
}

// goHashes returns "xxh3-64 xxh3-128 sha256" of b as the server writes them.
func goHashes(b []byte) string {
	h := xxh3.Hash128(b)
	return fmt.Sprintf("%s %016x%016x %s", chunker.FormatHash(xxh3.Hash(b)), h.Hi, h.Lo, sha(b))
}

func TestBrowserNetworkDown(t *testing.T) {
	need(t, true)
	data := sample(7, 4<<20)
	// Offline emulation does not end a response already streaming, so the
	// proxy cuts each connection after 1.5 MB as well.
	s := startSite(t, map[string][]byte{"far.bin": data}, func(int) servertest.Fault {
		return servertest.Fault{BytesPerSecond: 2 << 20, CutAt: 1_500_000}
	})
	var got struct {
		Down card `json:"down"`
		Done card `json:"done"`
	}
	node(t, &got, "offline.mjs", s.base, "far.bin")
	if got.Down.State != "waiting" || !strings.Contains(got.Down.Message, "network is down") {
		t.Errorf("offline: state %q, message %q; want waiting, saying the network is down", got.Down.State, got.Down.Message)
	}
	got.Done.Stored = sha(data) // storedSHA256 is not read here; the page's own checks are
	checkIdentical(t, "far.bin", got.Done, data)
}

// TestBrowserMemoryAndInlineSHA256 downloads through the benchmark page with
// the options the main page leaves at their defaults: blocks kept in memory
// (the fallback where OPFS is missing) and SHA-256 computed while streaming.
func TestBrowserMemoryAndInlineSHA256(t *testing.T) {
	need(t, true)
	data := sample(8, 3<<20+5)
	s := startSite(t, map[string][]byte{"mem.bin": data}, nil)
	var r struct {
		Bytes   int64  `json:"bytes"`
		Storage string `json:"storage"`
		SHA256  string `json:"sha256"`
		Local   string `json:"sha256Local"`
		Stored  string `json:"sha256Stored"`
		Error   string `json:"error"`
	}
	node(t, &r, "bench-page.mjs", s.base+"/bench.html?path=mem.bin&storage=memory&sha256=1&check=1")
	want := sha(data)
	if r.Error != "" || r.Storage != "memory" || r.Bytes != int64(len(data)) {
		t.Fatalf("report %+v, want %d bytes in memory", r, len(data))
	}
	if r.SHA256 != want || r.Local != want || r.Stored != want {
		t.Errorf("SHA-256: server %s, computed while streaming %s, of the result %s; want %s", r.SHA256, r.Local, r.Stored, want)
	}
}

// sign returns a signed /sse/ link to rel for the file's current version,
// valid for ttl (negative: expired that long ago), as ferry sign makes it.
func (s *site) sign(t *testing.T, key []byte, rel string, ttl time.Duration) string {
	t.Helper()
	info, err := os.Stat(filepath.Join(s.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	etag := manifest.ETag(info.Size(), info.ModTime(), s.blockSize)
	return "/sse/" + url.PathEscape(rel) + "?" + server.Sign(key, rel, etag, time.Now().Add(ttl)).Encode()
}

// requestRecorder keeps the URL and Last-Event-ID of every request.
type requestRecorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	url         *url.URL
	lastEventID string
}

func (rr *requestRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr.mu.Lock()
		rr.reqs = append(rr.reqs, recorded{r.URL, r.Header.Get("Last-Event-ID")})
		rr.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// of returns the requests for path.
func (rr *requestRecorder) of(path string) []recorded {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out []recorded
	for _, r := range rr.reqs {
		if r.url.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestBrowserSignedURL opens the page with a signed link after the # on a
// server with a signing key and no tokens: its file list is private and the
// page says so; the linked file downloads through a proxy that cuts every
// connection, paused at half and resumed, with the link's query (and a
// parameter the module does not know) on every stream and manifest request;
// expired and tampered links end in a clear message after one try.
func TestBrowserSignedURL(t *testing.T) {
	need(t, true)
	key := []byte("ferry-test-signing-key")
	data := sample(9, 3<<20)
	var rec requestRecorder
	s := startSiteWith(t, map[string][]byte{"signed.bin": data, "expired.bin": sample(10, 1000), "tampered.bin": sample(11, 1000)}, siteOptions{
		plan:    func(int) servertest.Fault { return servertest.Fault{CutAt: 1_000_000} },
		signKey: key,
		wrap:    rec.wrap,
	})
	link := s.sign(t, key, "signed.bin", time.Hour) + "&from=ci"
	tampered := []byte(s.sign(t, key, "tampered.bin", time.Hour))
	if last := &tampered[len(tampered)-1]; *last == '0' { // another hex digit at the end of sig
		*last = '1'
	} else {
		*last = '0'
	}
	var got struct {
		Listing string          `json:"listing"`
		Signed  card            `json:"signed"`
		Refused map[string]card `json:"refused"`
	}
	node(t, &got, "signed.mjs", s.base, link, s.sign(t, key, "expired.bin", -time.Minute), string(tampered))

	if !strings.Contains(got.Listing, "Access denied (401)") || !strings.Contains(got.Listing, "signed link") {
		t.Errorf("file list message %q, want access denied (401) and a word on signed links", got.Listing)
	}
	if got.Signed.State == "error" {
		t.Fatalf("signed.bin: %s (%s); the signature was lost on the way", got.Signed.Message, got.Signed.Error)
	}
	checkIdentical(t, "signed.bin", got.Signed, data)
	if got.Signed.Progress.Reconnects == 0 {
		t.Errorf("no reconnects, want some: the proxy cuts every connection after 1 MB")
	}

	// Every stream and manifest request of the download carried the link's
	// query; some resumed with the browser's Last-Event-ID, some with the
	// worker's own lastEventId, and the manifest was asked on resume.
	want, _ := url.ParseQuery(link[strings.Index(link, "?")+1:])
	var header, query, manifests int
	for _, p := range []string{"/sse/signed.bin", "/manifest/signed.bin"} {
		for _, r := range rec.of(p) {
			q := r.url.Query()
			for _, k := range []string{"exp", "sig", "from"} {
				if q.Get(k) != want.Get(k) {
					t.Errorf("%s?%s: %s=%q, want %q from the link", r.url.Path, r.url.RawQuery, k, q.Get(k), want.Get(k))
				}
			}
			switch {
			case p == "/manifest/signed.bin":
				manifests++
			case r.lastEventID != "":
				header++
			case q.Has("lastEventId"):
				query++
			}
		}
	}
	if header == 0 || query == 0 || manifests == 0 {
		t.Errorf("%d streams resumed with Last-Event-ID, %d with lastEventId, %d manifest requests; want each at least once", header, query, manifests)
	}
	for _, p := range []string{"/sse/signed.bin", "/manifest/signed.bin"} {
		for _, r := range s.log.requests(p) {
			if r.Status == 401 || r.Status == 403 {
				t.Errorf("%s answered %d: the signature was lost on the way", p, r.Status)
			}
		}
	}

	for _, name := range []string{"expired.bin", "tampered.bin"} {
		c := got.Refused[name]
		if c.State != "error" || c.Error != "denied" || !strings.Contains(c.Message, "Access denied (403)") {
			t.Errorf("%s: state %q, error %q, message %q; want error denied saying access denied (403)", name, c.State, c.Error, c.Message)
		}
		n := len(s.log.requests("/sse/"+name)) + len(s.log.requests("/manifest/"+name))
		if n == 0 || n > 3 {
			t.Errorf("%s: %d requests, want one stream and one manifest request: a refused link is not retried", name, n)
		}
	}
}

// streamGate holds each /sse/ request until want of them are open at once,
// or until a deadline; it records the most that were open at once and the
// protocol of every request. The hold makes "at once" certain on a fast
// machine; over HTTP/1.1 Chromium would open at most six.
type streamGate struct {
	want     int
	deadline time.Time
	all      chan struct{} // closed when want streams are open

	mu       sync.Mutex
	released bool // all is closed
	open     int
	peak     int
	protos   map[string]int
}

func newStreamGate(want int, wait time.Duration) *streamGate {
	return &streamGate{want: want, deadline: time.Now().Add(wait), all: make(chan struct{}), protos: map[string]int{}}
}

func (g *streamGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.protos[r.Proto]++
		stream := strings.HasPrefix(r.URL.Path, "/sse/")
		if stream {
			g.open++
			g.peak = max(g.peak, g.open)
			if g.open >= g.want && !g.released {
				g.released = true
				close(g.all)
			}
		}
		g.mu.Unlock()
		if !stream {
			h.ServeHTTP(w, r)
			return
		}
		defer func() {
			g.mu.Lock()
			g.open--
			g.mu.Unlock()
		}()
		timer := time.NewTimer(time.Until(g.deadline))
		defer timer.Stop()
		select {
		case <-g.all:
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (g *streamGate) stats() (peak int, protos map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak, maps.Clone(g.protos)
}

// TestBrowserParallelOverHTTP2 downloads eight files at once through the
// page from a server on HTTPS with HTTP/2 (httptest's self-signed
// certificate; chromium told to accept it): all eight streams are open at
// the same time, which the six connections per host of HTTP/1.1 would not
// allow, every request is HTTP/2, and every file ends byte-identical.
func TestBrowserParallelOverHTTP2(t *testing.T) {
	need(t, true)
	const n = 8
	files := map[string][]byte{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("part-%d.bin", i)
		files[name] = sample(uint64(20+i), 300<<10+i*1000)
		names = append(names, name)
	}
	gate := newStreamGate(n, 20*time.Second)
	s := startSiteWith(t, files, siteOptions{tls: true, blockSize: 16 << 10, wrap: gate.wrap})
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("site at %s, want https", s.base)
	}
	var got map[string]card
	node(t, &got, "download.mjs", append([]string{s.base}, names...)...)
	for _, name := range names {
		checkIdentical(t, name, got[name], files[name])
	}
	peak, protos := gate.stats()
	if peak < n {
		t.Errorf("at most %d streams were open at once, want %d", peak, n)
	}
	if len(protos) != 1 || protos["HTTP/2.0"] == 0 {
		t.Errorf("requests by protocol: %v, want all HTTP/2.0", protos)
	}
}

// balancer spreads a site's requests over two replicas, round-robin, as a
// load balancer would, and counts the requests for files. The page and its
// list always come from the first replica, so that the etag the page
// starts with is known; the requests of a file alternate between the
// replicas starting with the second, per file (together) or per file and
// endpoint (apart, for the file named apart: its streams start on the
// first replica and its manifests on the second), so that each test sees
// the same sequence whatever else runs. The file named flaky is served by
// the first replica alone, and every other stream request for it is
// answered 503, as by a proxy that drops some.
type balancer struct {
	replicas     [2]http.Handler
	apart, flaky string

	mu    sync.Mutex
	turns map[string]int
	reqs  map[string][]time.Time // by URL path
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	to := 0
	stream, manifest := strings.HasPrefix(p, chunker.PathSSE), strings.HasPrefix(p, chunker.PathManifest)
	if stream || manifest {
		name := p[strings.Index(p[1:], "/")+2:]
		key, first := name, 1
		switch name {
		case b.apart:
			key = p
			if stream {
				first = 0
			}
		case b.flaky:
			key, first = p, 0
		}
		b.mu.Lock()
		turn := b.turns[key]
		to = (first + turn) % 2
		b.turns[key]++
		b.reqs[p] = append(b.reqs[p], time.Now())
		b.mu.Unlock()
		if name == b.flaky {
			if stream && turn%2 == 0 {
				http.Error(w, "dropped", http.StatusServiceUnavailable)
				return
			}
			to = 0
		}
	}
	b.replicas[to].ServeHTTP(w, r)
}

// requests returns the times of the requests for a URL path.
func (b *balancer) requests(path string) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.reqs[path])
}

// TestBrowserReplicasDisagree downloads from two real servers behind one
// balancer, holding the same bytes with different mtimes, so different
// etags. Through the page (default retries, 5), every stream reaches the
// replica whose version the page does not hold and every manifest the one
// it does; through the module (retries 3), the streams alternate and so do
// the manifests, after a proxy cut the first stream with some blocks
// verified. Both end with a "changed" error that says the servers disagree,
// naming both etags, after at most retries+1 manifest requests, backing
// off between them; the blocks verified are read again only once. A third
// download, with retries 2, starts from an older version (one round to
// the current one) and has every other stream refused by a server that has
// the current version: a refusal is given back once a stream finds the
// version, so the download completes.
func TestBrowserReplicasDisagree(t *testing.T) {
	need(t, true)
	const together, apart, flaky = "together.bin", "apart.bin", "flaky.bin"
	files := map[string][]byte{together: sample(12, 1<<20), apart: sample(13, 4<<20), flaky: sample(14, 4<<20)}
	var etags [2]map[string]string
	b := &balancer{apart: apart, flaky: flaky, turns: map[string]int{}, reqs: map[string][]time.Time{}}
	mtime := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 2 {
		root := t.TempDir()
		etags[i] = map[string]string{}
		for name, data := range files {
			p := filepath.Join(root, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			mt := mtime.Add(time.Duration(i) * time.Hour)
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			etags[i][name] = manifest.ETag(int64(len(data)), mt, blockSize)
		}
		srv, err := server.New(server.Config{Root: root, BlockSize: blockSize, Retry: 250 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		b.replicas[i] = srv
	}
	ts := httptest.NewServer(b)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	// Every connection is cut after 1 MB: apart's first stream delivers a
	// few blocks and no more.
	proxy, err := servertest.NewProxy(ts.Listener.Addr().String(), func(int) servertest.Fault { return servertest.Fault{CutAt: 1_000_000} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	base := "http://" + proxy.Addr

	const moduleRetries = 3
	var got struct {
		Page   card `json:"page"`
		Module struct {
			State    string `json:"state"`
			Error    string `json:"error"`
			Message  string `json:"message"`
			Progress struct {
				Bytes    int64 `json:"bytes"`
				Reused   int   `json:"reused"`
				Rehashed int   `json:"rehashed"`
			} `json:"progress"`
		} `json:"module"`
		Flaky struct {
			State   string `json:"state"`
			Message string `json:"message"`
			Size    int    `json:"size"`
		} `json:"flaky"`
		Invalid string `json:"invalid"`
	}
	older := manifest.ETag(int64(len(files[flaky])), mtime.Add(-time.Hour), blockSize)
	node(t, &got, "replicas.mjs", base, together, apart, etags[0][apart], fmt.Sprint(moduleRetries), flaky, older)

	for _, c := range []struct {
		name, state, code, message string
		retries                    int
	}{
		{together, got.Page.State, got.Page.Error, got.Page.Message, 5},
		{apart, got.Module.State, got.Module.Error, got.Module.Message, moduleRetries},
	} {
		want := fmt.Sprintf("the servers behind %s%s%s disagree about the file's version: etag %s, then %s",
			base, chunker.PathSSE, c.name, etags[0][c.name], etags[1][c.name])
		if c.state != "error" || c.code != "changed" || !strings.Contains(c.message, want) {
			t.Errorf("%s: state %q, error %q, message %q; want error changed saying %q", c.name, c.state, c.code, c.message, want)
		}
		manifests := b.requests(chunker.PathManifest + c.name)
		if len(manifests) < 2 || len(manifests) > c.retries+1 {
			t.Errorf("%s: %d manifest requests, want 2 to %d (retries+1)", c.name, len(manifests), c.retries+1)
		}
		if streams := b.requests(chunker.PathSSE + c.name); len(streams) > 2*(c.retries+1) {
			t.Errorf("%s: %d stream requests, want at most %d", c.name, len(streams), 2*(c.retries+1))
		}
		// Rounds back off: 0, 1 s, 2 s, 4 s … between manifest requests.
		if n := len(manifests); n >= 3 {
			last := manifests[n-1].Sub(manifests[n-2])
			want := time.Duration(500<<(n-2)) * time.Millisecond
			if last < want*3/4 {
				t.Errorf("%s: %v between the last two of %d manifest requests, want about %v (backoff)", c.name, last, n, want)
			}
		}
	}
	// apart's first stream verified some blocks; each of its rounds kept
	// them (the same bytes), and only the first read and hashed them again:
	// the later ones compared the two manifests.
	if p := got.Module.Progress; p.Rehashed == 0 || p.Reused != p.Rehashed*moduleRetries {
		t.Errorf("%s: %d blocks read and hashed again, %d reused over %d rounds; want the blocks verified before the first change read once and reused in every round",
			apart, p.Rehashed, p.Reused, moduleRetries)
	}
	if got.Flaky.State != "done" || got.Flaky.Size != len(files[flaky]) {
		t.Errorf("%s: state %q (%s), %d bytes; want done, %d bytes: a refused stream is not a version change",
			flaky, got.Flaky.State, got.Flaky.Message, got.Flaky.Size, len(files[flaky]))
	}
	if refused := (len(b.requests(chunker.PathSSE+flaky)) + 1) / 2; refused < 4 {
		t.Errorf("%s: %d stream requests refused, want at least 4 (more than its retries)", flaky, refused)
	}
	if !strings.Contains(got.Invalid, "RangeError") {
		t.Errorf("download with retries -1: %q, want a RangeError", got.Invalid)
	}
}
