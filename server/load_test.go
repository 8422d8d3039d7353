package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Budgets of the load tests, per open stream of a 16 KiB-block file: the
// growth of the Go heap and stacks, and of the process's resident memory
// (checked without the race detector), while streams are held open by
// readers that stopped reading. Measured: about 75 KiB of each, mostly the
// stream's block buffer (16 KiB), its encoded frame (22 KiB), net/http's
// buffers (8 KiB) and two goroutine stacks.
const (
	heapPerStream = 96 << 10
	rssPerStream  = 128 << 10
)

// loadServer is a Server behind the http.Server of HTTPServer (its
// timeouts) on a loopback listener, with its stream outcomes counted.
type loadServer struct {
	s    *Server
	hs   *http.Server
	addr string
	out  *outcomes
}

func startLoad(t *testing.T, cfg Config) *loadServer {
	t.Helper()
	out := &outcomes{n: map[string]int{}}
	cfg.Logger = slog.New(out)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return setBuffer(c, syscall.SO_SNDBUF, serverSendBuffer) // accepted sockets inherit it
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(ln.Addr().String())
	served := make(chan struct{})
	go func() { hs.Serve(ln); close(served) }() // exits when hs is closed
	t.Cleanup(func() { hs.Close(); <-served; s.Close() })
	return &loadServer{s: s, hs: hs, addr: ln.Addr().String(), out: out}
}

// outcomes is a slog.Handler that counts the outcomes of the server's
// stream log lines and the bytes those streams wrote.
type outcomes struct {
	mu    sync.Mutex
	n     map[string]int
	total int
	bytes int64
}

func (o *outcomes) Enabled(context.Context, slog.Level) bool { return true }
func (o *outcomes) WithAttrs([]slog.Attr) slog.Handler       { return o }
func (o *outcomes) WithGroup(string) slog.Handler            { return o }

func (o *outcomes) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "stream" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total++
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "outcome":
			o.n[a.Value.String()]++
		case "bytes":
			o.bytes += a.Value.Int64()
		}
		return true
	})
	return nil
}

func (o *outcomes) get() (total int, n map[string]int, bytes int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = make(map[string]int, len(o.n))
	for k, v := range o.n {
		n[k] = v
	}
	return o.total, n, o.bytes
}

// eventually waits up to d for cond, checking it every 10 ms.
func eventually(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// usage is what the leak and memory checks measure about this process.
type usage struct {
	goroutines int
	fds        int
	heap       uint64 // Go heap in use plus goroutine stacks, after a GC
	rss        int64  // resident set, bytes
}

func measure(t *testing.T) usage {
	t.Helper()
	runtime.GC() // frees what finalizers released in the cycle before
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapInuse + ms.StackInuse, rss: procStatus(t, "VmRSS")}
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, heap+stacks %.1f MiB, RSS %.1f MiB", u.goroutines, u.fds, mib(int64(u.heap)), mib(u.rss))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// procStatus returns a size field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", field, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// needFDs skips the test unless this process may open n more files.
func needFDs(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n+256 {
		t.Skipf("RLIMIT_NOFILE %d: this test needs %d descriptors", lim.Cur, n+256)
	}
}

// Socket buffers. On loopback the kernel lets a connection's send buffer
// grow to megabytes (tcp_wmem, autotuned from a 64 KiB MSS), so a reader
// that stops reading would let the server run megabytes ahead into kernel
// memory before it blocks. The server's sockets get a fixed 32 KiB send
// buffer and the slow readers' a 4 KiB receive buffer (the kernel doubles
// both), as a network with a real round trip would keep them: a stalled
// reader then blocks its stream after a few blocks.
const serverSendBuffer, readerBuffer = 32 << 10, 4 << 10

func setBuffer(c syscall.RawConn, opt, size int) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) })
	return errors.Join(err, serr)
}

// smallWindow dials with a small receive buffer.
var smallWindow = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	return setBuffer(c, syscall.SO_RCVBUF, readerBuffer)
}}

// raceEnabled reports whether the race detector is on: it multiplies the
// resident memory (shadow memory), so RSS budgets are checked without it.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// socketMemory returns the memory of all TCP sockets of the machine
// (/proc/net/sockstat, "TCP: ... mem N" in pages), or -1.
func socketMemory() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "TCP:"); ok {
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					n, _ := strconv.ParseInt(f[i+1], 10, 64)
					return n * int64(os.Getpagesize())
				}
			}
		}
	}
	return -1
}

func loadData(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// TestThousandConcurrentDownloads opens 1,000 SSE downloads of a 256 KiB
// file (16 blocks of 16 KiB) at once against one server: every client
// holds its stream open after the meta event until all 1,000 are open,
// then reads it to the end. Each stream must be byte-identical to one
// that was decoded and verified block by block and against the file.
func TestThousandConcurrentDownloads(t *testing.T) {
	const n = 1000
	needFDs(t, 3*n)
	root := t.TempDir()
	data := loadData(1, 256<<10)
	writeFile(t, root, "f.bin", data)
	ls := startLoad(t, Config{Root: root, BlockSize: 16 << 10})
	u := "http://" + ls.addr + "/sse/f.bin"

	// The reference: one stream, parsed with a third-party SSE reader and
	// verified (readStream), and the digest of its bytes.
	resp := get(t, u)
	golden, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ref := readStream(t, bytes.NewReader(golden))
	if !bytes.Equal(ref.data, data) || ref.end == nil || ref.end.SHA256 != sha(data) {
		t.Fatal("the reference stream does not hold the file")
	}
	want := sha256.Sum256(golden)

	if f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0); err == nil { // reset VmHWM, where allowed
		f.Write([]byte("5"))
		f.Close()
	}
	before := measure(t)
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	var open, done sync.WaitGroup
	release := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	open.Add(n)
	for range n {
		done.Go(func() {
			opened := false
			defer func() {
				if !opened {
					open.Done()
				}
			}()
			resp, err := client.Get(u)
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail(fmt.Errorf("status %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After")))
				return
			}
			br := bufio.NewReader(resp.Body)
			h := sha256.New()
			for { // the retry field and the meta event
				line, err := br.ReadSlice('\n')
				h.Write(line)
				if err != nil {
					fail(err)
					return
				}
				if len(line) == 1 {
					break
				}
			}
			opened = true
			open.Done()
			<-release
			if _, err := io.Copy(h, br); err != nil {
				fail(err)
				return
			}
			if [32]byte(h.Sum(nil)) != want {
				fail(errors.New("a stream differs from the verified one"))
				return
			}
			ok.Add(1)
		})
	}
	open.Wait()
	all := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	during := procStatus(t, "VmRSS")
	goroutines := runtime.NumGoroutine()
	close(release)
	done.Wait()
	took := time.Since(start)
	hwm := procStatus(t, "VmHWM")
	if failed.Load() > 0 {
		t.Fatalf("%d of %d downloads failed; the first: %v", failed.Load(), n, firstErr.Load())
	}
	if ok.Load() != n {
		t.Fatalf("%d of %d downloads verified", ok.Load(), n)
	}
	total, outs, sent := ls.out.get()
	t.Logf("%d concurrent downloads of 256 KiB: all %d open after %v, all verified after %v (%.0f MB/s of events); "+
		"with all open: %d goroutines, heap+stacks %.1f MiB, RSS %.1f MiB; peak RSS (VmHWM) %.1f MiB, from %s before; "+
		"server: %d streams logged %v, %.0f MB written (clients and server share this process)",
		n, n, all.Round(time.Millisecond), took.Round(time.Millisecond), float64(n*len(golden))/took.Seconds()/1e6,
		goroutines, mib(int64(ms.HeapInuse+ms.StackInuse)), mib(during), mib(hwm), before, total, outs, float64(sent)/1e6)
	if budget := before.rss + n*(rssPerStream+64<<10); hwm > budget && !raceEnabled() {
		t.Errorf("peak RSS %.1f MiB, want at most %.1f MiB: %d KiB per download for the server and %d KiB for its client",
			mib(hwm), mib(budget), rssPerStream>>10, 64)
	}
}

// holdStreams opens n streams of path that read up to the first block
// event and then stop reading, and returns their connections.
func holdStreams(t *testing.T, addr, path string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	buf := make([]byte, 32<<10)
	for range n {
		c, err := smallWindow.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d streams: %v", len(conns), err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: ferry\r\n\r\n", path)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var seen []byte
		for !bytes.Contains(seen, []byte("\nid: 0\n")) {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("stream %d: %v after %q", len(conns), err, seen)
			}
			seen = append(seen[max(0, len(seen)-16):], buf[:k]...)
		}
	}
	return conns
}

// TestMemoryPerOpenStream holds 1,000 streams of a 4 MiB file open with
// readers that stopped after the first block, measures how much the
// process grew (the readers are bare sockets: the growth is the server's),
// and checks it against the per-stream budgets. Closing the readers frees
// every goroutine and descriptor.
func TestMemoryPerOpenStream(t *testing.T) {
	const n = 1000
	needFDs(t, 3*n)
	root := t.TempDir()
	writeFile(t, root, "big.bin", loadData(2, 4<<20))
	ls := startLoad(t, Config{Root: root, BlockSize: 16 << 10, WriteTimeout: time.Minute})
	get(t, "http://"+ls.addr+"/manifest/big.bin").Body.Close() // later streams take the digests from the cache

	before := measure(t)
	sockBefore := socketMemory()
	start := time.Now()
	conns := holdStreams(t, ls.addr, "/sse/big.bin", n)
	opened := time.Since(start)
	during := measure(t)
	sock := (socketMemory() - sockBefore) / n
	heap := (int64(during.heap) - int64(before.heap)) / n
	rss := (during.rss - before.rss) / n
	t.Logf("%d streams held open in %v: %s, from %s: %.1f KiB of heap+stacks and %.1f KiB of RSS per stream (race detector: %v); "+
		"kernel TCP memory of the machine grew by %.1f KiB per stream",
		n, opened.Round(time.Millisecond), during, before, float64(heap)/1024, float64(rss)/1024, raceEnabled(), float64(sock)/1024)
	if heap > heapPerStream {
		t.Errorf("heap+stacks grew by %d KiB per open stream, budget %d KiB", heap>>10, heapPerStream>>10)
	}
	if rss > rssPerStream && !raceEnabled() {
		t.Errorf("RSS grew by %d KiB per open stream, budget %d KiB", rss>>10, rssPerStream>>10)
	}
	if during.goroutines < before.goroutines+n {
		t.Errorf("%d goroutines with %d streams open, from %d: are they open?", during.goroutines, n, before.goroutines)
	}

	for _, c := range conns {
		c.Close()
	}
	var after usage
	if !eventually(t, 10*time.Second, func() bool {
		after = measure(t)
		return after.goroutines <= before.goroutines && after.fds <= before.fds
	}) {
		t.Errorf("10s after the readers left: %s; before they came: %s", after, before)
	}
	if total, outs, sent := ls.out.get(); total != n || outs[outcomeGone]+outs[outcomeWriteFail] != n {
		t.Errorf("stream outcomes %v (%d logged), want %d ended by the readers leaving", outs, total, n)
	} else {
		t.Logf("each held stream wrote %.0f KiB before its reader's window closed", float64(sent)/n/1024)
	}
}

// TestAbortedStreamsLeakNothing runs 10,000 streams whose client cancels
// the request once it has the first block, 32 at a time. Afterwards the
// process has as many goroutines and descriptors as before, and its heap
// is back near where it was after the first 1,000.
func TestAbortedStreamsLeakNothing(t *testing.T) {
	const n, workers = 10000, 32
	root := t.TempDir()
	writeFile(t, root, "f.bin", loadData(3, 1<<20))
	ls := startLoad(t, Config{Root: root, BlockSize: 16 << 10})
	// A client that cancels closes its connection: these clients are bare
	// sockets that send the request, read the meta event and the first
	// block, and close. (net/http's client does the same on cancel, with
	// two goroutines more per request, which would only slow the test.)
	request := []byte("GET /sse/f.bin HTTP/1.1\r\nHost: ferry\r\n\r\n")
	abort := func(buf []byte) error {
		c, err := net.Dial("tcp", ls.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(request); err != nil {
			return err
		}
		// Two event ends: the meta event's and the first block's. Each
		// event is one chunk of the response, so "\n\n" is never split
		// by the chunk framing, only, maybe, by two reads.
		var events int
		var last byte
		for events < 2 {
			k, err := c.Read(buf)
			if err != nil {
				return fmt.Errorf("after %d events: %w", events, err)
			}
			if k > 0 && last == '\n' && buf[0] == '\n' {
				events++
			}
			events += bytes.Count(buf[:k], []byte("\n\n"))
			last = buf[max(k-1, 0)]
		}
		return nil // closing mid-stream: the server is writing the next blocks
	}
	run := func(count int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Int64
		var firstErr atomic.Value
		for range workers {
			wg.Go(func() {
				buf := make([]byte, 64<<10)
				for next.Add(1) <= int64(count) {
					if err := abort(buf); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d aborted streams failed before their first block; the first: %v", failed.Load(), firstErr.Load())
		}
	}
	settled := func(base usage, logged int) usage {
		var u usage
		if !eventually(t, 10*time.Second, func() bool {
			u = measure(t)
			total, _, _ := ls.out.get()
			return u.goroutines <= base.goroutines && u.fds <= base.fds && total == logged
		}) {
			total, outs, _ := ls.out.get()
			t.Errorf("10s after %d aborted streams: %s (%d streams logged: %v); before: %s", logged, u, total, outs, base)
		}
		return u
	}

	run(1) // warm the manifest cache, the encoder pool and the connection code
	base := settled(measure(t), 1)
	start := time.Now()
	run(1000)
	first := settled(base, 1001)
	run(n - 1000)
	took := time.Since(start)
	last := settled(base, n+1)
	_, outs, sent := ls.out.get()
	t.Logf("%d aborted streams in %v (%.0f/s): before %s; after 1,000 %s; after %d %s; outcomes %v, %.0f KiB written per stream",
		n, took.Round(time.Millisecond), n/took.Seconds(), base, first, n, last, outs, float64(sent)/(n+1)/1024)
	if grown := int64(last.heap) - int64(first.heap); grown > 1<<20 {
		t.Errorf("the heap grew by %.1f MiB over the last %d aborted streams", mib(grown), n-1000)
	}
	if grown := int64(last.heap) - int64(base.heap); grown > 4<<20 {
		t.Errorf("the heap grew by %.1f MiB over %d aborted streams", mib(grown), n)
	}
	if outs[outcomeComplete] > n/100 {
		t.Errorf("%d of %d streams completed: they were not aborted mid-stream", outs[outcomeComplete], n)
	}
}

// TestSlowReadersAreDropped opens 50 streams that never read a byte: each
// fills its socket buffers and blocks, and the per-write deadline
// (WriteTimeout, 300 ms here) ends it, frees its goroutine and closes the
// connection, while the readers still hold their end open.
func TestSlowReadersAreDropped(t *testing.T) {
	const n = 50
	const writeTimeout = 300 * time.Millisecond
	root := t.TempDir()
	writeFile(t, root, "big.bin", loadData(4, 4<<20))
	ls := startLoad(t, Config{Root: root, BlockSize: 16 << 10, WriteTimeout: writeTimeout})
	get(t, "http://"+ls.addr+"/manifest/big.bin").Body.Close()
	before := measure(t)
	start := time.Now()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := smallWindow.Dial("tcp", ls.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /sse/big.bin HTTP/1.1\r\nHost: ferry\r\n\r\n")
		conns[i] = c
	}
	var u usage
	if !eventually(t, 10*time.Second, func() bool {
		total, _, _ := ls.out.get()
		u = measure(t)
		// The readers' own n sockets stay open; the server's are closed.
		return total == n && u.goroutines <= before.goroutines && u.fds <= before.fds+n
	}) {
		total, outs, _ := ls.out.get()
		t.Fatalf("after 10s: %d of %d streams ended %v; %s, before %s", total, n, outs, u, before)
	}
	took := time.Since(start)
	_, outs, sent := ls.out.get()
	if outs[outcomeWriteFail] != n {
		t.Errorf("outcomes %v, want all %d %q", outs, n, outcomeWriteFail)
	}
	if took > writeTimeout+5*time.Second {
		t.Errorf("the slow readers were dropped after %v, write timeout %v", took, writeTimeout)
	}
	// The server closed each connection: after what it had sent, EOF or a reset.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("connection %d still open after its stream was dropped", i)
		}
	}
	t.Logf("%d readers that read nothing dropped after %v (write timeout %v), %.0f KiB sent to each; %s, before %s",
		n, took.Round(time.Millisecond), writeTimeout, float64(sent)/n/1024, u, before)
}

// TestSlowlorisIsCut sends request headers one byte every 100 ms on 100
// connections. Config.ReadHeaderTimeout (default 10 s; 500 ms here)
// closes each of them without an answer and frees its goroutine, while a
// normal request is still served.
func TestSlowlorisIsCut(t *testing.T) {
	const n = 100
	const timeout = 500 * time.Millisecond
	root := t.TempDir()
	writeFile(t, root, "f.bin", loadData(5, 64<<10))
	def := func() time.Duration {
		s, err := New(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.HTTPServer("127.0.0.1:0").ReadHeaderTimeout
	}()
	if def <= 0 || def > 10*time.Second {
		t.Fatalf("HTTPServer sets ReadHeaderTimeout %v by default, want a bound of at most 10s", def)
	}
	ls := startLoad(t, Config{Root: root, BlockSize: 16 << 10, ReadHeaderTimeout: timeout})
	before := measure(t)
	request := []byte("GET /sse/f.bin HTTP/1.1\r\nHost: ferry\r\nUser-Agent: slowloris\r\nX-Padding: " + strings.Repeat("a", 200) + "\r\n\r\n")
	type cut struct {
		after time.Duration
		got   []byte
		err   error
	}
	cuts := make(chan cut, n)
	conns := make([]net.Conn, n)
	start := time.Now()
	for i := range conns {
		c, err := net.Dial("tcp", ls.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		go func() { // exits when the server closes the connection, or at the deadline
			c.SetReadDeadline(time.Now().Add(timeout + 10*time.Second))
			got, err := io.ReadAll(io.LimitReader(c, 4096))
			cuts <- cut{time.Since(start), got, err}
		}()
	}
	// One byte per tick to every connection, until all are cut.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var results []cut
	for sent := 0; len(results) < n; {
		select {
		case <-tick.C:
			if sent < len(request) {
				for _, c := range conns {
					c.Write(request[sent : sent+1])
				}
				sent++
			}
		case r := <-cuts:
			results = append(results, r)
		}
	}
	var latest time.Duration
	for _, r := range results {
		latest = max(latest, r.after)
		if ne, ok := r.err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a slowloris connection was still open after %v", r.after)
		}
		// net/http hangs up silently, or answers 400 when the deadline
		// falls inside a header line; never does a request get through.
		if len(r.got) > 0 && !bytes.HasPrefix(r.got, []byte("HTTP/1.1 400 ")) {
			t.Errorf("a slowloris connection got the answer %q", r.got)
		}
	}
	if latest > timeout+3*time.Second {
		t.Errorf("the last slowloris connection was cut after %v, ReadHeaderTimeout %v", latest, timeout)
	}
	var u usage
	if !eventually(t, 5*time.Second, func() bool { u = measure(t); return u.goroutines <= before.goroutines }) {
		t.Errorf("after the slowloris connections were cut: %s, before: %s", u, before)
	}
	if resp := get(t, "http://"+ls.addr+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after the slowloris: %d", resp.StatusCode)
	}
	t.Logf("%d slowloris connections (1 byte per 100 ms) all cut by %v (ReadHeaderTimeout %v, default %v)",
		n, latest.Round(time.Millisecond), timeout, def)
}
