package client

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

var (
	soakFor  = flag.Duration("soak", 0, "run TestSoak for this long instead of one short round (e.g. -soak=2m)")
	soakSeed = flag.Uint64("soak.seed", 0, "seed of TestSoak; 0 picks one from the clock (printed on failure)")
)

// An old mtime for every served file, so that a replacement written now
// always gets another etag, whatever the file system's timestamp granularity.
var soakEpoch = time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)

// soakTotals adds up what the downloads of a soak met.
type soakTotals struct {
	downloads, completed, documented, replaced atomic.Int64
	cuts, stalls, flips                        atomic.Int64 // planned by the proxy
	unavailable, truncated                     atomic.Int64 // answered by the fault handler
	failures                                   atomic.Int64 // failed attempts the client logged and recovered from
	refetched                                  atomic.Int64
	bytes                                      atomic.Int64
}

// Faults counts the failures the clients saw: every reconnect and retry
// they logged, plus the downloads that ended with a documented error.
func (s *soakTotals) Faults() int64 { return s.failures.Load() + s.documented.Load() }

func (s *soakTotals) String() string {
	return fmt.Sprintf("%d downloads (%d MB): %d completed at once, %d ended with a documented error and were completed by a rerun, %d with the file replaced mid-download; "+
		"planned proxy faults: %d cuts, %d stalls, %d flipped bytes; %d 503 answers, %d truncated end events; "+
		"the clients recovered from %d failed attempts and refetched %d blocks",
		s.downloads.Load(), s.bytes.Load()>>20, s.completed.Load(), s.documented.Load(), s.replaced.Load(),
		s.cuts.Load(), s.stalls.Load(), s.flips.Load(), s.unavailable.Load(), s.truncated.Load(),
		s.failures.Load(), s.refetched.Load())
}

// TestSoak downloads files of a few MB in 16 KiB blocks through a proxy that
// cuts connections at random byte positions, stalls them past the client's
// idle timeout and flips bytes inside events, behind a handler that answers
// 503 and truncates end events; some files are replaced mid-download. Each
// download must end byte-identical to a version of the file, or with a
// documented error (ErrTimeout, ErrNetwork, ErrIntegrity, a 5xx HTTPError)
// and a saved state from which a rerun completes.
//
// By default it starts downloads until the clients have met soakTarget
// faults (a few seconds); -soak=2m starts them for two minutes instead;
// -soak.seed=N replays a seed (download i always draws the same faults).
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("soak seed %d; replay with: go test ./client -run Soak -soak.seed=%d", seed, seed)
		}
	})
	var tot soakTotals
	start := time.Now()
	more := func() bool {
		if *soakFor > 0 {
			return time.Since(start) < *soakFor
		}
		return tot.Faults() < soakTarget && time.Since(start) < soakCap
	}
	// Most of a download's time is the clients' reconnection delays: run
	// several at once, more than -parallel would. t.Run may be called from
	// several goroutines.
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range soakWorkers {
		wg.Go(func() {
			for more() && !t.Failed() {
				i := next.Add(1) - 1
				rng := rand.New(rand.NewPCG(seed, i))
				t.Run(fmt.Sprint(i), func(t *testing.T) { soakDownload(t, rng, &tot) })
			}
		})
	}
	wg.Wait()
	t.Logf("seed %d, %s, in %.1fs", seed, &tot, time.Since(start).Seconds())
	if *soakFor == 0 && !t.Failed() && tot.Faults() < soakTarget {
		t.Errorf("the soak met %d faults in %s, want at least %d: %s", tot.Faults(), soakCap, soakTarget, &tot)
	}
}

// The soak's default run: how many faults the clients must meet, within
// how long, and how many downloads run at once.
const (
	soakTarget  = 200
	soakCap     = 40 * time.Second
	soakWorkers = 6
)

// soakData returns n bytes that mix random runs (sent as identity) with
// zeros and text (compressible), so that every block encoding is exercised.
func soakData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; {
		run := min(n-i, 1+rng.IntN(96<<10))
		switch rng.IntN(4) {
		case 0: // zeros
		case 1:
			for j := range run {
				b[i+j] = "ferry soak text "[j%16]
			}
		default:
			rand.NewChaCha8([32]byte{byte(rng.Uint32()), byte(i), byte(i >> 8), byte(i >> 16)}).Read(b[i : i+run])
		}
		i += run
	}
	return b
}

// faultHandler sits between the test server and a Ferry server: it answers
// some requests with 503 and truncates some streams inside their end event.
type faultHandler struct {
	next http.Handler
	tot  *soakTotals
	calm atomic.Bool // no more faults: the rerun after a documented error

	mu  sync.Mutex
	rng *rand.Rand
}

func (h *faultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var unavailable, truncate bool
	var keep float64
	var abort bool
	if !h.calm.Load() {
		h.mu.Lock()
		unavailable = h.rng.IntN(100) < 6
		truncate = strings.HasPrefix(r.URL.Path, "/sse/") && h.rng.IntN(100) < 10
		keep, abort = h.rng.Float64(), h.rng.IntN(2) == 0
		h.mu.Unlock()
	}
	if unavailable {
		h.tot.unavailable.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"busy","status":503}`))
		return
	}
	if truncate {
		w = &truncatingWriter{ResponseWriter: w, keep: keep, abort: abort, tot: h.tot}
	}
	h.next.ServeHTTP(w, r)
}

var errTruncated = errors.New("soak: response truncated inside its end event")

// truncatingWriter passes a stream through until its end event, writes a
// part of that event (keep is the fraction), and then either aborts the
// connection or fails the write, so that the server ends the response
// cleanly without the rest of the event.
type truncatingWriter struct {
	http.ResponseWriter
	keep  float64
	abort bool
	tot   *soakTotals
}

func (w *truncatingWriter) Write(p []byte) (int, error) {
	i := bytes.Index(p, []byte("event: end\n"))
	if i < 0 {
		return w.ResponseWriter.Write(p)
	}
	w.tot.truncated.Add(1)
	n := i + int(w.keep*float64(len(p)-i-1)) // never the final blank line
	w.ResponseWriter.Write(p[:n])
	http.NewResponseController(w.ResponseWriter).Flush()
	if w.abort {
		panic(http.ErrAbortHandler)
	}
	return n, errTruncated
}

func (w *truncatingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *truncatingWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// soakDownload runs one download of the soak under the faults rng draws.
func soakDownload(t *testing.T, rng *rand.Rand, tot *soakTotals) {
	root := t.TempDir()
	size := 1<<20 + rng.IntN(2<<20)
	old := soakData(rng, size)
	src := filepath.Join(root, "f.bin")
	if err := os.WriteFile(src, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, soakEpoch, soakEpoch); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := &faultHandler{next: srv, tot: tot, rng: rand.New(rand.NewPCG(rng.Uint64(), 1))}
	ts := httptest.NewServer(h)
	var planMu sync.Mutex
	planRng := rand.New(rand.NewPCG(rng.Uint64(), 2))
	proxy, err := servertest.NewProxy(ts.Listener.Addr().String(), func(int) servertest.Fault {
		if h.calm.Load() {
			return servertest.Fault{}
		}
		planMu.Lock()
		defer planMu.Unlock()
		at := 1 + planRng.Int64N(48<<10)
		switch p := planRng.IntN(100); {
		case p < 55:
			tot.cuts.Add(1)
			return servertest.Fault{CutAt: at}
		case p < 63:
			tot.stalls.Add(1)
			return servertest.Fault{StallAt: at}
		case p < 93:
			tot.flips.Add(1)
			return servertest.Fault{FlipAt: 256 + at} // past the response head: inside the events
		}
		return servertest.Fault{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close(); ts.Close(); srv.Close() })
	url := "http://" + proxy.Addr + "/sse/f.bin"

	// A quarter of the downloads see the file replaced once a random share
	// of it is on disk: in place (truncate and write) or by a rename.
	var next []byte
	replaceAt, inPlace := int64(-1), rng.IntN(2) == 0
	if rng.IntN(4) == 0 {
		next = bytes.Clone(old)
		copy(next[rng.IntN(size-64):], "a new version")
		if rng.IntN(2) == 0 {
			next = append(next, soakData(rng, 1+rng.IntN(2*testBS))...)
		}
		replaceAt = rng.Int64N(int64(size))
	}
	var replaced atomic.Bool

	out := filepath.Join(t.TempDir(), "f.bin")
	var logMu sync.Mutex
	var logs []string
	opts := &testJob{out: out, Client: Client{IdleTimeout: 500 * time.Millisecond, Retries: 6}}
	opts.Options = Options{
		Parallel:      []int{1, 1, 2, 3}[rng.IntN(4)],
		NoCompression: rng.IntN(3) == 0,
		SHA256:        rng.IntN(2) == 0,
		Logf: func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			if strings.Contains(msg, "reconnecting") || strings.HasSuffix(msg, "retrying") {
				tot.failures.Add(1)
			}
			logMu.Lock()
			logs = append(logs, time.Now().Format("15:04:05.000 ")+msg)
			logMu.Unlock()
		},
		OnProgress: func(p Progress) {
			if replaceAt >= 0 && p.Done >= replaceAt && !replaced.Load() {
				replaced.Store(true)
				replaceFile(t, src, next, inPlace)
			}
		},
	}
	began := time.Now()
	t.Cleanup(func() {
		if t.Failed() || time.Since(began) > 20*time.Second {
			logMu.Lock()
			t.Logf("size %d, parallel %d, replace at %d (in place %v); client log:\n%s", size, opts.Parallel, replaceAt, inPlace, strings.Join(logs, "\n"))
			logMu.Unlock()
		}
	})
	tot.downloads.Add(1)
	tot.bytes.Add(int64(size))
	res, err := opts.run(context.Background(), url)
	if replaced.Load() {
		tot.replaced.Add(1)
	}
	if err != nil {
		var he *HTTPError
		documented := errors.Is(err, ErrTimeout) || errors.Is(err, ErrNetwork) || errors.Is(err, ErrIntegrity) ||
			errors.As(err, &he) && he.Status >= 500
		if !documented {
			t.Fatalf("Download: %v; want success or a documented error", err)
		}
		// State is saved once the first meta event has given the version;
		// a download that failed before has nothing on disk to resume.
		_, perr := os.Stat(PartialPath(out))
		hadPart := perr == nil
		if hadPart && newPartial(out).loadState() == nil {
			t.Fatalf("Download: %v, leaving %s without its state", err, PartialPath(out))
		}
		tot.documented.Add(1)
		t.Logf("Download ended with a documented error: %v; rerunning without faults", err)
		h.calm.Store(true)
		rerun := testOptions(out)
		rerun.SHA256 = opts.SHA256
		if res, err = rerun.run(context.Background(), url); err != nil {
			t.Fatalf("rerun after a documented error: %v", err)
		}
		if hadPart && !res.Resumed {
			t.Errorf("the rerun did not resume from the saved state: %+v", res)
		}
	} else {
		tot.completed.Add(1)
	}
	tot.refetched.Add(int64(res.BlocksRefetched))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case bytes.Equal(got, old):
		if replaced.Load() && inPlace && res.Reconnects == 0 {
			// Possible only if the server had sent every block before the
			// rewrite: the sockets between it and the client hold a lot.
			t.Logf("finished with the old version although it was rewritten in place")
		}
	case next != nil && bytes.Equal(got, next):
	default:
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s (or the new version, %d bytes, if replaced: %v)",
			out, len(got), sha(got), len(old), sha(old), len(next), replaced.Load())
	}
	checkDigests(t, res, got)
	if opts.SHA256 != (res.SHA256 != "") {
		t.Errorf("Options.SHA256 %v, yet Result.SHA256 = %q", opts.SHA256, res.SHA256)
	}
	for _, p := range []string{PartialPath(out), statePath(out)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

// replaceFile puts data at path as a new version: in place (truncate and
// write, as a careless deploy does) or by writing a temporary file and
// renaming it over path (as an atomic deploy does).
func replaceFile(t *testing.T, path string, data []byte, inPlace bool) {
	if inPlace {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Error(err)
		}
		return
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Error(err)
	}
}

// writeHook calls fn inside the server's write of the event whose id is
// "id: <at>"; fn's error, if any, fails that write.
type writeHook struct {
	http.ResponseWriter
	at   string
	once *sync.Once
	fn   func() error
}

func (w *writeHook) Write(p []byte) (int, error) {
	var err error
	if bytes.Contains(p, []byte("id: "+w.at+"\n")) {
		w.once.Do(func() { err = w.fn() })
	}
	if err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(p)
}

func (w *writeHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *writeHook) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// TestFileReplacedMidStream replaces the served file from inside the
// server's write of block 10, so that the next block the server reads is
// the new version's. The download never ends mixed: a rewrite in place is
// seen at the next block and the download restarts against the new
// version; a rename leaves the open stream on the old version, which is
// delivered whole or, once the stream is cut, replaced by the new one. The
// new version may even keep the old size and modification time (cp -p of
// a build whose mtime is clamped to SOURCE_DATE_EPOCH), so that the etag
// stays the same: the new version differs in block 3, already delivered,
// and block 30, not yet read.
func TestFileReplacedMidStream(t *testing.T) {
	old := randomData(40, 48*testBS+100)
	same := bytes.Clone(old) // same size: only the etag's mtime tells
	copy(same[3*testBS:], "changed in a block already sent")
	copy(same[30*testBS:], "changed in place")
	longer := append(bytes.Clone(old), randomData(41, testBS+7)...)
	copy(longer[5*testBS:], "changed early, in a block already delivered")
	errCutHere := errors.New("test: cut after the replacement")
	tests := []struct {
		name      string
		next      []byte
		inPlace   bool
		sameMTime bool // the new version keeps the old mtime (cp -p of another build)
		cut       bool // the stream is cut right after the replacement
		want      string
	}{
		{"in place, same size", same, true, false, false, "new"},
		{"in place, longer", longer, true, false, false, "new"},
		// The open stream reads the old inode: it delivers it whole, or,
		// where the server sees the unlink move that inode's ctime
		// (Linux), ends so that the download restarts on the new version.
		{"rename, not cut", longer, false, false, false, "either"},
		{"rename, cut", longer, false, false, true, "new"},
		{"rename, same size and mtime, cut", same, false, true, true, "new"},
		{"in place, same size and mtime", same, true, true, false, "new"},
		{"in place, same size and mtime, cut", same, true, true, true, "new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(root, "f.bin")
			if err := os.WriteFile(src, old, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(src, soakEpoch, soakEpoch)
			srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				srv.ServeHTTP(&writeHook{ResponseWriter: w, at: fmt.Sprint(10 * testBS), once: &once, fn: func() error {
					replaceFile(t, src, tt.next, tt.inPlace)
					if tt.sameMTime {
						os.Chtimes(src, soakEpoch, soakEpoch)
					}
					if tt.cut {
						return errCutHere
					}
					return nil
				}}, r)
			}))
			t.Cleanup(func() { ts.Close(); srv.Close() })
			out := filepath.Join(t.TempDir(), "f.bin")
			opts := testOptions(out)
			opts.NoCompression = true
			res, err := opts.run(context.Background(), ts.URL+"/sse/f.bin")
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			want := old
			got, _ := os.ReadFile(out)
			if tt.want == "new" || tt.want == "either" && !bytes.Equal(got, old) {
				want = tt.next
			}
			if !bytes.Equal(got, want) {
				which := "neither version (mixed)"
				switch {
				case bytes.Equal(got, old):
					which = "the old version"
				case bytes.Equal(got, tt.next):
					which = "the new version"
				}
				t.Fatalf("the download holds %s, want the %s one (%+v)", which, tt.want, res)
			}
			checkResult(t, out, want, res)
		})
	}
}

// TestDiskFull fills the client's file system mid-download: a small tmpfs
// that another file fills once a third of the download is on disk. The
// download fails with ErrDisk (ENOSPC) and keeps its state; once space is
// freed a rerun completes, reusing what was written. Needs permission to
// mount (root); skipped otherwise.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v); TestFileSizeLimit covers the disk error path", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	data := randomData(42, 2<<20)
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	out := filepath.Join(dir, "f.bin")
	filler := filepath.Join(dir, "filler")
	opts := testOptions(out)
	opts.NoCompression = true
	var filled bool
	opts.OnProgress = func(p Progress) {
		if !filled && p.Done >= int64(len(data))/3 {
			filled = true
			// Writes until the file system is full; the error is expected.
			fill, _ := os.Create(filler)
			buf := make([]byte, 64<<10)
			for {
				if _, err := fill.Write(buf); err != nil {
					break
				}
			}
			fill.Close()
		}
	}
	_, err := opts.run(context.Background(), f.url("f.bin"))
	if !errors.Is(err, ErrDisk) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Download onto a full disk = %v, want ErrDisk wrapping ENOSPC", err)
	}
	if newPartial(out).loadState() == nil {
		t.Fatal("no state saved after the disk filled")
	}
	os.Remove(filler)
	res, err := testOptions(out).run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatalf("rerun after freeing space: %v", err)
	}
	checkResult(t, out, data, res)
	if !res.Resumed || res.BytesReused < int64(len(data))/3-testBS {
		t.Errorf("the rerun reused %d bytes (resumed %v), want at least the third written before the disk filled", res.BytesReused, res.Resumed)
	}
}

// TestFileSizeLimit makes block writes fail mid-download with EFBIG by
// lowering this process's RLIMIT_FSIZE below the offset of the blocks still
// missing (Go ignores SIGXFSZ, so the write returns the error). The
// download fails with ErrDisk and keeps its state; a rerun without the
// limit completes.
func TestFileSizeLimit(t *testing.T) {
	data := randomData(43, 64*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, cutAfter(20*testBS))
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	opts.Retries = -1
	opts.NoCompression = true
	if _, err := opts.run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrNetwork) {
		t.Fatalf("cut download = %v, want ErrNetwork", err)
	}
	direct := "http://" + f.ts.Listener.Addr().String() + "/sse/f.bin"

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := syscall.Rlimit{Cur: 40 * testBS, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	_, err := testOptions(out).run(context.Background(), direct)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, ErrDisk) || !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Download past RLIMIT_FSIZE = %v, want ErrDisk wrapping EFBIG", err)
	}
	if newPartial(out).loadState() == nil {
		t.Fatal("no state saved after the write error")
	}
	res, err := testOptions(out).run(context.Background(), direct)
	if err != nil {
		t.Fatalf("rerun without the limit: %v", err)
	}
	checkResult(t, out, data, res)
	if res.BytesReused < 40*testBS {
		t.Errorf("the rerun reused %d bytes, want the %d below the limit", res.BytesReused, 40*testBS)
	}
}

// TestDamagedManifest damages block hashes in the manifest a resuming
// client fetches, of a block on disk and of one still to fetch: the client
// must fetch the manifest again rather than refetch a good block until its
// retries run out, and finish, with one stream or several.
func TestDamagedManifest(t *testing.T) {
	for _, parallel := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprint("parallel=", parallel), func(t *testing.T) { testDamagedManifest(t, parallel) })
	}
}

func testDamagedManifest(t *testing.T, parallel int) {
	data := randomData(44, 32*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, cutAfter(20*testBS))
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	opts.Retries = -1
	if _, err := opts.run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrNetwork) {
		t.Fatalf("cut download = %v, want ErrNetwork", err)
	}
	var damaged atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/manifest/") || damaged.Swap(true) {
			f.srv.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		i := bytes.Index(body, []byte(`"hashes":["`))
		if i < 0 {
			t.Errorf("no hashes in the manifest %s", body)
		}
		// The first digit of the hashes of block 5 (on disk) and block 25
		// (to fetch), made another hex digit.
		for _, block := range []int{5, 25} {
			if i < 0 {
				break
			}
			at := i + len(`"hashes":["`) + block*len(`0123456789abcdef","`)
			if body[at] == '0' {
				body[at] = '1'
			} else {
				body[at] = '0'
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer ts.Close()
	url := ts.URL + "/sse/f.bin"

	var mu sync.Mutex
	var logs []string
	opts = testOptions(out)
	opts.Retries = 0 // the default, 5
	opts.Parallel = parallel
	opts.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	res, err := opts.run(context.Background(), url)
	if err != nil {
		t.Fatalf("Download with a damaged manifest = %v; client log:\n%s", err, strings.Join(logs, "\n"))
	}
	checkResult(t, out, data, res)
	if !strings.Contains(strings.Join(logs, "\n"), "fetched the manifest again") {
		t.Errorf("the client did not refetch the manifest; log:\n%s", strings.Join(logs, "\n"))
	}
}

// TestRewriteKeepingSizeAndMTimeAfterCaching rewrites a served file in
// place, keeping its size and mtime, after the server has cached its
// manifest: the cached hashes must not outlive the version they describe,
// or every stream ends at the first changed block and no download of the
// file can complete (with --cache-dir, not even after a restart).
func TestRewriteKeepingSizeAndMTimeAfterCaching(t *testing.T) {
	old := randomData(45, 20*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": old}, nil)
	src := filepath.Join(f.root, "f.bin")
	if err := os.Chtimes(src, soakEpoch, soakEpoch); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + f.proxy.Addr + "/manifest/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	next := bytes.Clone(old)
	copy(next[7*testBS:], "a new build, same size, same clamped mtime")
	replaceFile(t, src, next, true)
	if err := os.Chtimes(src, soakEpoch, soakEpoch); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	opts.Retries = 3 // the failure is not transient
	res, err := opts.run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	checkResult(t, out, next, res)
}
