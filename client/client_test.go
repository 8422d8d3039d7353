package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/manifest"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

const testBS = 16 << 10

// fixture is a served folder, optionally behind a fault proxy.
type fixture struct {
	root  string
	srv   *server.Server
	ts    *httptest.Server
	proxy *servertest.Proxy
}

func newFixture(t *testing.T, files map[string][]byte, plan func(n int) servertest.Fault) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir()}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(f.root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New(server.Config{Root: f.root, BlockSize: testBS, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.ts = httptest.NewServer(srv)
	f.proxy, err = servertest.NewProxy(f.ts.Listener.Addr().String(), plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.proxy.Close()
		f.ts.Close()
		srv.Close()
	})
	return f
}

func (f *fixture) url(name string) string { return "http://" + f.proxy.Addr + "/sse/" + name }

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func xxh128(b []byte) string {
	s := manifest.NewXXH3Summer()
	s.Write(b)
	return s.Digests().XXH3128
}

// checkDigests fails unless res reports the digests of want: the xxh3-128
// always, the SHA-256 if the download computed one.
func checkDigests(t *testing.T, res *Result, want []byte) {
	t.Helper()
	if res.XXH3128 != xxh128(want) {
		t.Errorf("Result.XXH3128 = %s, want %s", res.XXH3128, xxh128(want))
	}
	if res.SHA256 != "" && res.SHA256 != sha(want) {
		t.Errorf("Result.SHA256 = %s, want %s", res.SHA256, sha(want))
	}
}

// testJob is one download of a test: the Client's settings, the
// download's options and its destination.
type testJob struct {
	Client
	Options
	out string
}

// testOptions returns a download to out with the tests' timeouts.
func testOptions(out string) *testJob {
	return &testJob{Client: Client{IdleTimeout: 5 * time.Second, Retries: 50}, out: out}
}

func (j *testJob) run(ctx context.Context, url string) (*Result, error) {
	defer j.Client.Close()
	return j.Client.Download(ctx, url, j.out, j.Options)
}

// checkResult fails unless out holds want and the partial files are gone.
func checkResult(t *testing.T, out string, want []byte, res *Result) {
	t.Helper()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", out, len(got), sha(got), len(want), sha(want))
	}
	if res != nil {
		checkDigests(t, res, want)
	}
	for _, p := range []string{PartialPath(out), statePath(out)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

func TestDownloadSurvivesCuts(t *testing.T) {
	data := randomData(1, 40*testBS+123)
	// Each case lists the byte counts at which successive connections are
	// cut: mid-event, right at the start, and many times per download.
	cases := map[string][]int64{
		"mid-event once":    {testBS * 5},
		"very early":        {1, 10, 200},
		"every few blocks":  {30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000},
		"just after header": {180, 181, 182},
		"random":            nil,
	}
	for name, cuts := range cases {
		t.Run(name, func(t *testing.T) {
			var plan func(int) servertest.Fault
			if cuts != nil {
				plan = func(n int) servertest.Fault {
					if n < len(cuts) {
						return servertest.Fault{CutAt: cuts[n]}
					}
					return servertest.Fault{}
				}
			} else {
				r := rand.New(rand.NewPCG(7, 7))
				plan = func(n int) servertest.Fault {
					if n < 30 {
						return servertest.Fault{CutAt: 1 + r.Int64N(4*testBS)}
					}
					return servertest.Fault{}
				}
			}
			f := newFixture(t, map[string][]byte{"f.bin": data}, plan)
			out := filepath.Join(t.TempDir(), "f.bin")
			res, err := testOptions(out).run(context.Background(), f.url("f.bin"))
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			checkResult(t, out, data, res)
			if cuts != nil && res.Reconnects < len(cuts) {
				t.Errorf("Reconnects = %d, want at least %d", res.Reconnects, len(cuts))
			}
		})
	}
}

// TestCutsOnEventBoundaries cuts exactly where one event ends and the
// next begins, found by reading the uncut stream first.
func TestCutsOnEventBoundaries(t *testing.T) {
	data := randomData(2, 12*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	resp, err := http.Get("http://" + f.proxy.Addr + "/sse/f.bin?encoding=zstd,gzip")
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	resp.Body.Close()
	// Offsets of the blank lines in the body; add the size of the response
	// head and chunk framing approximately by cutting on both sides.
	var bounds []int64
	for i, b := 0, raw.Bytes(); ; {
		j := bytes.Index(b[i:], []byte("\n\n"))
		if j < 0 {
			break
		}
		i += j + 2
		bounds = append(bounds, int64(i))
	}
	var cuts []int64
	for _, b := range bounds {
		cuts = append(cuts, b+150, b+151) // near the boundary once the head is counted
	}
	var n atomic.Int64
	f.proxy.SetPlan(func(int) servertest.Fault {
		i := n.Add(1) - 1
		if i < int64(len(cuts)) {
			return servertest.Fault{CutAt: cuts[i]}
		}
		return servertest.Fault{}
	})
	out := filepath.Join(t.TempDir(), "f.bin")
	res, err := testOptions(out).run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	checkResult(t, out, data, res)
}

func TestFlippedByteIsRefetched(t *testing.T) {
	data := randomData(3, 20*testBS)
	var logs []string
	// Positions inside the base64 of the first, fourth and eighth blocks
	// (the response head and meta event take a few hundred bytes).
	for _, at := range []int64{1500, testBS * 4, testBS*10 + 17} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			f := newFixture(t, map[string][]byte{"f.bin": data}, func(n int) servertest.Fault {
				if n == 0 {
					return servertest.Fault{FlipAt: at}
				}
				return servertest.Fault{}
			})
			out := filepath.Join(t.TempDir(), "f.bin")
			opts := testOptions(out)
			opts.NoCompression = true
			opts.Logf = func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
			res, err := opts.run(context.Background(), f.url("f.bin"))
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			checkResult(t, out, data, res)
			if res.BlocksRefetched < 1 && res.Reconnects < 1 {
				t.Errorf("a flipped byte at %d caused no refetch or reconnect (%+v)", at, res)
			}
		})
	}
	if !strings.Contains(strings.Join(logs, "\n"), "failed verification") {
		t.Errorf("no message says a block failed verification:\n%s", strings.Join(logs, "\n"))
	}
}

// cutAfter makes the first connection stop after n bytes and the rest
// fail, so that a download is left partial.
func cutAfter(n int64) func(int) servertest.Fault {
	return func(i int) servertest.Fault {
		return servertest.Fault{CutAt: n}
	}
}

func TestRemoteReplacedBetweenCutAndResume(t *testing.T) {
	old := randomData(4, 32*testBS)
	// The new version changes blocks 3 and 20 and grows by half a block.
	next := append(bytes.Clone(old), randomData(5, testBS/2)...)
	copy(next[3*testBS+10:], "changed")
	copy(next[20*testBS:], "changed too")
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			f := newFixture(t, map[string][]byte{"f.bin": old}, cutAfter(16*testBS))
			out := filepath.Join(t.TempDir(), "f.bin")
			opts := testOptions(out)
			opts.Retries = -1
			opts.NoCompression = true
			if _, err := opts.run(context.Background(), f.url("f.bin")); err == nil {
				t.Fatal("first Download succeeded through a proxy that cuts every connection")
			}
			if newPartial(out).loadState() == nil {
				t.Fatal("no state saved after a failed download")
			}
			part, _ := os.ReadFile(PartialPath(out))
			reusable := 0
			for i := 0; (i+1)*testBS <= len(part); i++ {
				if bytes.Equal(part[i*testBS:(i+1)*testBS], next[i*testBS:(i+1)*testBS]) {
					reusable++
				}
			}
			if err := os.WriteFile(filepath.Join(f.root, "f.bin"), next, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(filepath.Join(f.root, "f.bin"), time.Now().Add(time.Minute), time.Now().Add(time.Minute))
			f.proxy.SetPlan(nil)
			opts = testOptions(out)
			opts.Strict = strict
			res, err := opts.run(context.Background(), f.url("f.bin"))
			if strict {
				if !errors.Is(err, ErrRemoteChanged) {
					t.Fatalf("Download --strict = %v, want ErrRemoteChanged", err)
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Error("--strict left an output file")
				}
				return
			}
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			checkResult(t, out, next, res)
			// Every block the cut download left on disk is reused unless it
			// changed (block 3).
			if want := int64(reusable) * testBS; res.BytesReused != want || reusable < 5 {
				t.Errorf("BytesReused = %d, want %d (%d unchanged blocks on disk)", res.BytesReused, want, reusable)
			}
			if max := int64(len(next)) - int64(reusable)*testBS; res.BytesFetched > max {
				t.Errorf("BytesFetched = %d, want at most %d", res.BytesFetched, max)
			}
		})
	}
}

func TestRemoteChangesDuringDownload(t *testing.T) {
	old := randomData(6, 64*testBS)
	next := bytes.Clone(old)
	copy(next[40*testBS:], "new version")
	var f *fixture
	f = newFixture(t, map[string][]byte{"f.bin": old}, func(n int) servertest.Fault {
		if n == 0 {
			return servertest.Fault{CutAt: 20 * testBS}
		}
		return servertest.Fault{}
	})
	// Replace the file as soon as the first connection is cut.
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	replaced := false
	opts.Logf = func(format string, args ...any) {
		if !replaced && strings.Contains(format, "reconnecting") {
			replaced = true
			os.WriteFile(filepath.Join(f.root, "f.bin"), next, 0o644)
			os.Chtimes(filepath.Join(f.root, "f.bin"), time.Now().Add(time.Minute), time.Now().Add(time.Minute))
		}
	}
	res, err := opts.run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !replaced {
		t.Fatal("the download never reconnected")
	}
	checkResult(t, out, next, res)
	if res.BytesReused == 0 {
		t.Error("no block of the old version was reused")
	}
}

func TestStalledServerTimesOut(t *testing.T) {
	data := randomData(8, 30*testBS)
	// The first connection stalls mid-download, every later one at once.
	f := newFixture(t, map[string][]byte{"f.bin": data}, func(n int) servertest.Fault {
		if n == 0 {
			return servertest.Fault{StallAt: 8 * testBS}
		}
		return servertest.Fault{StallAt: 1}
	})
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	opts.IdleTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := opts.run(context.Background(), f.url("f.bin"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Download from a stalled server = %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 10*opts.IdleTimeout {
		t.Errorf("gave up after %v, want about two idle timeouts of %v", took, opts.IdleTimeout)
	}
	if newPartial(out).loadState() == nil {
		t.Fatal("no state saved after the timeout")
	}
	f.proxy.SetPlan(nil)
	res, err := testOptions(out).run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	checkResult(t, out, data, res)
	if res.BytesReused == 0 || !res.Resumed {
		t.Errorf("rerun reused %d bytes (resumed=%v), want the blocks already on disk", res.BytesReused, res.Resumed)
	}
}

func TestParallel(t *testing.T) {
	data := randomData(9, 50*testBS+5)
	for _, n := range []int{2, 4, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t, map[string][]byte{"f.bin": data}, func(i int) servertest.Fault {
				if i < 3 {
					return servertest.Fault{CutAt: 3*testBS + int64(i)*1000}
				}
				return servertest.Fault{}
			})
			out := filepath.Join(t.TempDir(), "f.bin")
			opts := testOptions(out)
			opts.Parallel = n
			res, err := opts.run(context.Background(), f.url("f.bin"))
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			checkResult(t, out, data, res)
			if f.proxy.Conns() < n {
				t.Errorf("%d connections for --parallel %d", f.proxy.Conns(), n)
			}
		})
	}
}

func TestExistingDestination(t *testing.T) {
	data := randomData(10, 5*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	out := filepath.Join(t.TempDir(), "f.bin")
	// The same file: already complete.
	os.WriteFile(out, data, 0o644)
	res, err := testOptions(out).run(context.Background(), f.url("f.bin"))
	if err != nil || !res.AlreadyComplete {
		t.Fatalf("Download over an identical file = %+v, %v, want AlreadyComplete", res, err)
	}
	// A different file: refused without Force, replaced with it.
	os.WriteFile(out, []byte("something else"), 0o644)
	if _, err := testOptions(out).run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrExists) {
		t.Fatalf("Download over another file = %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "something else" {
		t.Fatal("the existing file was touched")
	}
	opts := testOptions(out)
	opts.Force = true
	res, err = opts.run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, out, data, res)
}

// TestSHA256OnDemand: a download computes the SHA-256 when asked to, on
// every way to a finished file (a fresh stream, a resumed one, a file already
// complete), and checks it against the server's; without it, the xxh3-128
// alone checks the whole file.
func TestSHA256OnDemand(t *testing.T) {
	data := randomData(21, 10*testBS+123)
	var broken atomic.Bool // cut the first connection half way, the later ones at once
	var first atomic.Int64
	first.Store(-1)
	f := newFixture(t, map[string][]byte{"f.bin": data}, func(n int) servertest.Fault {
		switch {
		case !broken.Load():
			return servertest.Fault{}
		case first.CompareAndSwap(-1, int64(n)):
			return servertest.Fault{CutAt: int64(len(data)) / 2}
		default:
			return servertest.Fault{CutAt: 1}
		}
	})
	dir := t.TempDir()
	download := func(name string, withSHA bool) (*Result, []string, error) {
		var logs []string
		opts := testOptions(filepath.Join(dir, name))
		opts.SHA256 = withSHA
		opts.Logf = func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
		res, err := opts.run(context.Background(), f.url("f.bin"))
		return res, logs, err
	}

	for _, withSHA := range []bool{false, true} {
		name := fmt.Sprintf("fresh-%v.bin", withSHA)
		res, logs, err := download(name, withSHA)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, filepath.Join(dir, name), data, res)
		if withSHA != (res.SHA256 != "") || len(logs) > 0 {
			t.Errorf("fresh download, SHA256 %v: Result.SHA256 = %q, log %q", withSHA, res.SHA256, logs)
		}
	}

	// Resumed: stopped half way, then finished with the SHA-256 asked for;
	// it hashes the file on disk. Then again, on the finished file.
	broken.Store(true)
	opts := testOptions(filepath.Join(dir, "resumed.bin"))
	opts.Retries = -1
	if _, err := opts.run(context.Background(), f.url("f.bin")); err == nil {
		t.Fatal("the download was not stopped half way")
	}
	broken.Store(false)
	for _, step := range []string{"resumed", "already complete"} {
		res, _, err := download("resumed.bin", true)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if res.SHA256 != sha(data) || res.Resumed != (step == "resumed") || res.AlreadyComplete != (step == "already complete") {
			t.Errorf("%s: %+v, want sha256 %s", step, res, sha(data))
		}
	}

	// A server whose SHA-256 disagrees with its blocks, in its end event and
	// its manifest alike: only a download that computes the digest notices.
	fake := strings.Repeat("0", 64)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.srv.ServeHTTP(&replacer{ResponseWriter: w, old: []byte(sha(data)), new: []byte(fake)}, r)
	}))
	t.Cleanup(liar.Close)
	for _, withSHA := range []bool{false, true} {
		opts := testOptions(filepath.Join(dir, fmt.Sprintf("liar-%v.bin", withSHA)))
		opts.SHA256 = withSHA
		_, err := opts.run(context.Background(), liar.URL+"/sse/f.bin")
		if withSHA && !errors.Is(err, ErrIntegrity) || !withSHA && err != nil {
			t.Errorf("SHA256 %v against a server with a wrong SHA-256: %v", withSHA, err)
		}
	}
}

// replacer replaces old with new in every Write, which must hold the whole
// of each old it replaces.
type replacer struct {
	http.ResponseWriter
	old, new []byte
}

func (r *replacer) Write(p []byte) (int, error) {
	if _, err := r.ResponseWriter.Write(bytes.ReplaceAll(p, r.old, r.new)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *replacer) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func TestChecksum(t *testing.T) {
	data := randomData(11, 3*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	dir := t.TempDir()
	opts := testOptions(filepath.Join(dir, "ok.bin"))
	opts.Checksum = "sha256:" + strings.ToUpper(sha(data))
	if _, err := opts.run(context.Background(), f.url("f.bin")); err != nil {
		t.Fatalf("matching checksum: %v", err)
	}
	opts = testOptions(filepath.Join(dir, "bad.bin"))
	opts.Checksum = "sha256:" + strings.Repeat("0", 64)
	if _, err := opts.run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("wrong checksum = %v, want ErrIntegrity", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.bin")); !os.IsNotExist(err) {
		t.Error("a file failing --checksum was handed over")
	}
	opts.Checksum = "md5:abc"
	if _, err := opts.run(context.Background(), f.url("f.bin")); !errors.Is(err, ErrUsage) {
		t.Fatalf("malformed checksum = %v, want ErrUsage", err)
	}
}

func TestHTTPErrors(t *testing.T) {
	f := newFixture(t, map[string][]byte{"f.bin": []byte("x")}, nil)
	out := filepath.Join(t.TempDir(), "f.bin")
	_, err := testOptions(out).run(context.Background(), f.url("missing.bin"))
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Fatalf("Download of a missing file = %v, want HTTPError 404", err)
	}
	// 503 is retried (and Retry-After honoured), then succeeds.
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		f.srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	res, err := testOptions(filepath.Join(t.TempDir(), "g.bin")).run(context.Background(), ts.URL+"/sse/f.bin")
	if err != nil || res.Reconnects != 2 {
		t.Fatalf("Download through two 503s = %+v, %v, want success after 2 reconnects", res, err)
	}
}

func TestNetworkErrorAfterRetries(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.Listener.Addr().String()
	ln.Close() // nothing listens there now
	opts := testOptions(filepath.Join(t.TempDir(), "f.bin"))
	opts.Retries = 2
	_, err := opts.run(context.Background(), "http://"+addr+"/sse/f.bin")
	if !errors.Is(err, ErrNetwork) {
		t.Fatalf("Download from a closed port = %v, want ErrNetwork", err)
	}
}

func TestURLForms(t *testing.T) {
	data := randomData(12, 2*testBS+1)
	f := newFixture(t, map[string][]byte{"a b.bin": data}, nil)
	for _, prefix := range []string{"/sse/", "/files/", "/manifest/"} {
		out := filepath.Join(t.TempDir(), "f.bin")
		res, err := testOptions(out).run(context.Background(), "http://"+f.proxy.Addr+prefix+"a%20b.bin")
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		checkResult(t, out, data, res)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		in, base, rel string
		ok            bool
	}{
		{"http://h:1/sse/a/b.bin", "http://h:1", "a/b.bin", true},
		{"https://h/files/a%20b", "https://h", "a%20b", true},
		{"http://h/mirror/manifest/x?v=1&sig=abc", "http://h/mirror", "x", true},
		{"http://h/sse/", "", "", false},
		{"ftp://h/sse/a", "", "", false},
		{"http://h/other/a", "", "", false},
		{"not a url", "", "", false},
	}
	for _, tt := range tests {
		ep, err := resolve(tt.in)
		if (err == nil) != tt.ok || ep.base != tt.base || ep.rel != tt.rel {
			t.Errorf("resolve(%q) = %+v, %v; want base %q rel %q ok=%v", tt.in, ep, err, tt.base, tt.rel, tt.ok)
		}
	}
	ep, _ := resolve("http://h/sse/x?v=1&sig=abc&lastEventId=5")
	if got := ep.sse(nil); got != "http://h/sse/x?sig=abc" {
		t.Errorf("sse URL = %q, want the signature kept and Ferry's parameters dropped", got)
	}
}

func TestSplit(t *testing.T) {
	spans := []span{{0, 10 * testBS}, {20 * testBS, 22*testBS + 5}}
	for _, n := range []int{1, 2, 3, 5, 50} {
		shares := split(spans, n, testBS)
		var total int64
		var flat []span
		for _, sh := range shares {
			for _, s := range sh {
				if s.start%testBS != 0 || s.end <= s.start {
					t.Errorf("split(%d): span %v is not block-aligned and non-empty", n, s)
				}
				total += s.end - s.start
				flat = append(flat, s)
			}
		}
		if total != 12*testBS+5 || len(shares) > n {
			t.Errorf("split(%d) = %d shares covering %d bytes, want at most %d covering %d", n, len(shares), total, n, 12*testBS+5)
		}
		for i := 1; i < len(flat); i++ {
			if flat[i].start < flat[i-1].end {
				t.Errorf("split(%d): spans overlap: %v", n, flat)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	data := randomData(13, 10*testBS)
	f := newFixture(t, map[string][]byte{"f.bin": data}, nil)
	local := filepath.Join(t.TempDir(), "f.bin")
	bad := bytes.Clone(data)
	bad[2*testBS] ^= 1
	bad[7*testBS+99] ^= 1
	os.WriteFile(local, bad, 0o644)
	rep, err := Verify(context.Background(), local, f.url("f.bin"), VerifyOptions{})
	if !errors.Is(err, ErrIntegrity) || rep == nil || fmt.Sprint(rep.BadBlocks) != "[2 7]" {
		t.Fatalf("Verify = %+v, %v; want bad blocks [2 7] and ErrIntegrity", rep, err)
	}
	os.WriteFile(local, data, 0o644)
	if rep, err := Verify(context.Background(), local, f.url("f.bin"), VerifyOptions{}); err != nil || !rep.OK {
		t.Fatalf("Verify of a good file = %+v, %v", rep, err)
	}
}

// TestRetryDelay: a connection cut while it was delivering, even in the middle
// of a block, is retried at once; repeated failures of any other kind back
// off from the server's retry hint, and Retry-After wins.
func TestRetryDelay(t *testing.T) {
	var hint retryHint
	hint.set(time.Second)
	tests := []struct {
		name     string
		b        failureBudget
		min, max time.Duration
	}{
		{"third failure", failureBudget{failures: 3}, time.Second, 3 * time.Second},
		{"third failure, cut while delivering", failureBudget{failures: 3, delivering: true}, 0, 100 * time.Millisecond},
		{"a stall after delivering", failureBudget{failures: 1, stalls: 1, delivering: true}, 500 * time.Millisecond, 1500 * time.Millisecond},
		{"Retry-After", failureBudget{failures: 3, delivering: true, retryAfter: 7 * time.Second}, 7 * time.Second, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.hint = &hint
			for range 50 { // the jitter is random
				if got := tt.b.delay(); got < tt.min || got > tt.max {
					t.Fatalf("delay() = %v, want between %v and %v", got, tt.min, tt.max)
				}
			}
		})
	}
}

// TestCutsInsideABlockRetryAtOnce: connections cut in the middle of their
// first block are retried without the backoff meant for a server that is
// down (here 10 s, the server's retry hint), yet still count as failures.
func TestCutsInsideABlockRetryAtOnce(t *testing.T) {
	data := randomData(31, 8*testBS)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	const cutAt = 2000 + testBS*4/3/2 // the headers, the meta event and half a block
	var conns atomic.Int64
	proxy, err := servertest.NewProxy(ts.Listener.Addr().String(), func(int) servertest.Fault {
		if conns.Add(1) <= 3 {
			return servertest.Fault{CutAt: cutAt}
		}
		return servertest.Fault{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	out := filepath.Join(t.TempDir(), "f.bin")
	opts := testOptions(out)
	opts.MaxTime = 4 * time.Second // the backoff for a third failure would be 5-15 s
	res, err := opts.run(context.Background(), "http://"+proxy.Addr+"/sse/f.bin")
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	checkResult(t, out, data, res)
	if res.Reconnects != 3 || res.BytesFetched != int64(len(data)) {
		t.Errorf("%d reconnects, %d bytes fetched; want 3 and %d", res.Reconnects, res.BytesFetched, len(data))
	}

	// A link that never lets a whole block through is given up on.
	conns.Store(-100)
	opts = testOptions(filepath.Join(t.TempDir(), "g.bin"))
	opts.Retries = 3
	if _, err := opts.run(context.Background(), "http://"+proxy.Addr+"/sse/f.bin"); !errors.Is(err, ErrNetwork) {
		t.Fatalf("through a link that cuts every block: %v, want ErrNetwork", err)
	}
}

// TestParallelFreshReadsNoMore: a fresh --parallel download asks for block 0
// alone, then splits the rest, so that no stream is cut back to a share while
// the server has sent on past it; the bytes on the wire are those of the file
// once. An empty file (416 to the probe) and a file of one block work too.
func TestParallelFreshReadsNoMore(t *testing.T) {
	data := randomData(41, 200*testBS+77)
	f := newFixture(t, map[string][]byte{"f.bin": data, "empty.bin": nil, "one.bin": data[:testBS-1]}, nil)
	for _, name := range []string{"empty.bin", "one.bin", "f.bin"} {
		before := f.proxy.BytesDown()
		out := filepath.Join(t.TempDir(), name)
		opts := testOptions(out)
		opts.Parallel = 4
		opts.NoCompression = true
		res, err := opts.run(context.Background(), f.url(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := os.ReadFile(filepath.Join(f.root, name))
		checkResult(t, out, want, res)
		// Base64 and framing: 4/3 of the bytes and about 150 per block;
		// headers, meta and end events: about 1 KB per response.
		wire := f.proxy.BytesDown() - before
		if limit := int64(len(want))*4/3 + int64(len(want)/testBS+1)*150 + 8*1024; wire > limit {
			t.Errorf("%s: %d bytes on the wire for %d bytes of file, want at most %d", name, wire, len(want), limit)
		}
	}
}
