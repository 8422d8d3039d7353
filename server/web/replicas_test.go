package web_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/realparts"
)

// The shipped nginx configuration, which TestBrowserReplicaKilledBehindNginx
// runs with only its addresses, ports and certificate paths replaced.
const deployNginx = "../../docs/deploy/nginx.conf"

// ferryBin is the ferry command, built once per test binary, the first
// time a test runs ferry serve as a process of its own.
var ferryBin struct {
	once sync.Once
	dir  string // the temporary folder it is built in; TestMain removes it
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ferryBin.dir != "" {
		os.RemoveAll(ferryBin.dir)
	}
	os.Exit(code)
}

// ferryBinary returns the path of the ferry command, building it first.
func ferryBinary(t *testing.T) string {
	t.Helper()
	ferryBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-web-bin-")
		if err != nil {
			ferryBin.err = err
			return
		}
		ferryBin.dir, ferryBin.path = dir, filepath.Join(dir, "ferry")
		cmd := exec.Command("go", "build", "-o", ferryBin.path, "./cmd/ferry")
		cmd.Dir = filepath.Join("..", "..") // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			ferryBin.err = fmt.Errorf("go build ./cmd/ferry: %w\n%s", err, out)
		}
	})
	if ferryBin.err != nil {
		t.Fatal(ferryBin.err)
	}
	return ferryBin.path
}

// accessLine is a line of nginx's access log in realparts.NginxHTTP's
// format: the request's URI and protocol, and the bytes of the body sent.
var accessLine = regexp.MustCompile(`"GET (\S+) (HTTP/[0-9.]+)" \d{3} (\d+) upstream=`)

// listening finds the address in the line ferry serve prints when it
// listens.
var listening = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)

// replica is a ferry serve process behind nginx.
type replica struct {
	name string
	cmd  *exec.Cmd
	addr string        // 127.0.0.1:PORT it listens on
	log  *logBuffer    // its JSON log, from stderr
	done chan struct{} // closed when the process has exited
}

// startReplicas starts n ferry serve processes over the same root, each
// with a manifest cache of its own, as the replicas of docs/DEPLOY.md are,
// and waits until each listens.
func startReplicas(t *testing.T, n int, root, blockSize string) []*replica {
	t.Helper()
	bin := ferryBinary(t)
	var rs []*replica
	for i := range n {
		r := &replica{name: fmt.Sprintf("replica%d", i+1), log: &logBuffer{}, done: make(chan struct{})}
		r.cmd = exec.Command(bin, "serve", "--root", root, "--addr", "127.0.0.1:0", "--block-size", blockSize,
			"--retry", "250ms", "--log", "json", "--cache-dir", t.TempDir())
		stdout, err := r.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		r.cmd.Stderr = r.log
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, rerr := bufio.NewReader(stdout).ReadString('\n')
		go io.Copy(io.Discard, stdout) // ends when the process does and Wait closes the pipe
		go func() { r.cmd.Wait(); close(r.done) }()
		t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
		m := listening.FindStringSubmatch(line)
		if rerr != nil || m == nil {
			t.Fatalf("%s did not start (%q, %v): %s", r.name, line, rerr, r.log.String())
		}
		r.addr = m[1]
		rs = append(rs, r)
	}
	return rs
}

// kill sends SIGKILL, a crash, and waits until the process is gone.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
		t.Fatalf("%s still running 10 s after SIGKILL", r.name)
	}
}

// written returns the bytes the process has written so far, sockets
// included (wchar in /proc/PID/io; write_bytes counts only what reaches a
// disk): the replica serving the stream is the one whose count grows by
// the stream's bytes.
func (r *replica) written(t *testing.T) int64 {
	t.Helper()
	n, err := realparts.Written(r.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("%s: %v (the test finds the streaming replica in /proc)", r.name, err)
	}
	return n
}

// nginx is docs/deploy/nginx.conf in front of replicas, with HTTP/2 over
// TLS on a self-signed certificate.
type nginx struct {
	https string // 127.0.0.1:PORT of HTTP/2 over TLS
	proc  *realparts.Proc
}

func startNginx(t *testing.T, rs []*replica) *nginx {
	t.Helper()
	n := &nginx{https: realparts.FreeAddr(t)}
	cert, key := realparts.SelfSignedCert(t, t.TempDir())
	oldnew := []string{
		"listen 80;", "listen " + realparts.FreeAddr(t) + ";",
		"listen 443 ssl http2;", "listen " + n.https + " ssl http2;",
		"/etc/ssl/ferry/fullchain.pem", cert,
		"/etc/ssl/ferry/privkey.pem", key,
	}
	for i, r := range rs {
		oldnew = append(oldnew, fmt.Sprintf("replica%d.internal:8080", i+1), r.addr)
	}
	n.proc = realparts.StartNginx(t, realparts.NginxHTTP(realparts.Load(t, deployNginx, oldnew...)))
	return n
}

// writeSample writes size bytes of sample(seed, size) to path without
// holding them in memory, and returns their SHA-256.
func writeSample(t *testing.T, path string, seed uint64, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{byte(seed), 'f', 'e', 'r', 'r', 'y'})
	if _, err := io.CopyN(io.MultiWriter(f, h), src, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// String returns the lines written so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// pageProgress is a line of kill.mjs: the card's progress.
type pageProgress struct {
	Bytes      int64  `json:"bytes"`
	Total      int64  `json:"total"`
	Reconnects int    `json:"reconnects"`
	Streams    int    `json:"streams"`
	State      string `json:"state"`
}

// follower runs a node script that prints progress lines while the test
// acts on them, then its result.
type follower struct {
	cmd    *exec.Cmd
	stderr *logBuffer
	done   chan struct{} // closed once stdout has ended and the script exited

	mu      sync.Mutex
	last    pageProgress
	changed chan struct{} // closed, and replaced, on every progress line
	result  []byte        // the line that is not progress
	err     error         // the script's exit, once done is closed
}

func startFollower(t *testing.T, script string, args ...string) *follower {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	f := &follower{stderr: &logBuffer{}, done: make(chan struct{}), changed: make(chan struct{})}
	f.cmd = exec.CommandContext(ctx, "node", append([]string{filepath.Join("test", script)}, args...)...)
	f.cmd.Env = append(os.Environ(), "FERRY_CHROMIUM="+chromium)
	f.cmd.Stderr = f.stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends with the script's stdout
		defer close(f.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var p pageProgress
			line := slices.Clone(sc.Bytes())
			f.mu.Lock()
			if json.Unmarshal(line, &p) == nil && p.State != "" {
				f.last = p
				close(f.changed)
				f.changed = make(chan struct{})
			} else {
				f.result = line
			}
			f.mu.Unlock()
		}
		f.err = f.cmd.Wait()
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// progress returns the last progress line and a channel closed at the next.
func (f *follower) progress() (pageProgress, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.changed
}

// waitUntil waits up to a minute for the page's progress to satisfy cond.
func (f *follower) waitUntil(t *testing.T, what string, cond func(pageProgress) bool) pageProgress {
	t.Helper()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for {
		p, next := f.progress()
		if cond(p) {
			return p
		}
		select {
		case <-next:
		case <-f.done:
			t.Fatalf("the page ended before %s (last progress %+v): %v\n%s", what, p, f.err, f.stderr.String())
		case <-timer.C:
			t.Fatalf("no %s after a minute (last progress %+v)\n%s", what, p, f.stderr.String())
		}
	}
}

// wait waits for the script to end and decodes its result into out.
func (f *follower) wait(t *testing.T, out any) {
	t.Helper()
	<-f.done
	if f.err != nil {
		t.Fatalf("node: %v\nstderr:\n%s", f.err, f.stderr.String())
	}
	if err := json.Unmarshal(f.result, out); err != nil {
		t.Fatalf("node printed %.200q: %v\nstderr:\n%s", f.result, err, f.stderr.String())
	}
}

// streamer returns the live replica that serves the page's stream: the
// one that writes more than a MiB while the page verifies step more bytes.
func streamer(t *testing.T, f *follower, live []*replica, step int64) *replica {
	t.Helper()
	before := make([]int64, len(live))
	for i, r := range live {
		before[i] = r.written(t)
	}
	p, _ := f.progress()
	f.waitUntil(t, fmt.Sprintf("progress past byte %d", p.Bytes+step), func(q pageProgress) bool { return q.Bytes >= p.Bytes+step })
	var who *replica
	var deltas []string
	for i, r := range live {
		d := r.written(t) - before[i]
		deltas = append(deltas, fmt.Sprintf("%s %d", r.name, d))
		if d < 1<<20 {
			continue
		}
		if who != nil {
			t.Fatalf("two replicas wrote megabytes while the page verified %d bytes of one stream: %v", step, deltas)
		}
		who = r
	}
	if who == nil {
		t.Fatalf("no replica wrote a MiB while the page verified %d bytes: %v", step, deltas)
	}
	return who
}

// TestBrowserReplicaKilledBehindNginx runs three ferry serve processes over
// one shared folder behind real nginx, started from docs/deploy/nginx.conf,
// and downloads a 128 MiB file through the page over HTTPS and HTTP/2.
// Twice, near a third and two thirds of the file, the replica serving the
// stream is killed (SIGKILL); the browser reconnects through nginx with
// Last-Event-ID and the version pin, nginx sends it to a live replica (the
// next in turn, or the one after by proxy_next_upstream), and the file ends
// byte-identical, with at most one block per kill received twice, on a live
// replica that continued a stream. Every stream is HTTP/2 in nginx's log.
func TestBrowserReplicaKilledBehindNginx(t *testing.T) {
	need(t, true)
	realparts.Nginx(t)
	const (
		name  = "big.bin"
		size  = 128 << 20 // 256 MiB takes half a minute through playwright on two cores
		bs    = 64 << 10
		kills = 2
		step  = 8 << 20 // bytes the page verifies while the test looks for the streaming replica
	)
	root := t.TempDir()
	want := writeSample(t, filepath.Join(root, name), 30, size)
	replicas := startReplicas(t, 3, root, "64KiB")
	lb := startNginx(t, replicas)
	start := time.Now()
	f := startFollower(t, "kill.mjs", "https://"+lb.https, name)

	live := slices.Clone(replicas)
	var killed []string
	for i := range kills {
		// Once the page is on a stream of a live replica (the first, or the
		// one after the last kill), near a third of the file, then two
		// thirds, and has verified bytes of that stream.
		f.waitUntil(t, fmt.Sprintf("stream %d", i+1), func(p pageProgress) bool { return p.Streams > i })
		near := int64(size*(i+1)/(kills+1) - step)
		f.waitUntil(t, fmt.Sprintf("byte %d", near), func(p pageProgress) bool { return p.Bytes >= near })
		victim := streamer(t, f, live, step)
		p, _ := f.progress()
		if p.Bytes >= size {
			t.Fatalf("the download was complete before kill %d", i+1)
		}
		victim.kill(t)
		live = slices.DeleteFunc(live, func(r *replica) bool { return r == victim })
		killed = append(killed, fmt.Sprintf("%s at %d MiB", victim.name, p.Bytes>>20))
	}
	var got struct {
		Card struct {
			card
			Protocol string `json:"protocol"`
		} `json:"card"`
	}
	f.waitUntil(t, "the end of the download", func(p pageProgress) bool { return p.Bytes == size || p.State == "error" })
	took := time.Since(start) // from the page's start to verified, before the SHA-256 checks
	f.wait(t, &got)
	c := got.Card.card
	if c.State != "done" || c.SHA256 != want || c.Local != want || c.Stored != want {
		t.Fatalf("state %q (%s); SHA-256 shown %s, computed in the page %s, of the bytes in OPFS %s; want done and %s",
			c.State, c.Message, c.SHA256, c.Local, c.Stored, want)
	}
	if got.Card.Protocol != "h2" {
		t.Errorf("the page was loaded over %q, want h2", got.Card.Protocol)
	}
	var h2 int     // streams in nginx's access log, served over HTTP/2
	var sent int64 // bytes of their bodies
	for line := range strings.Lines(lb.proc.Output()) {
		m := accessLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "/sse/"+name) {
			continue
		}
		if m[2] != "HTTP/2.0" {
			t.Errorf("nginx served a stream over %s, want HTTP/2.0: %s", m[2], line)
		}
		h2++
		n, _ := strconv.ParseInt(m[3], 10, 64)
		sent += n
	}
	if h2 < kills+1 {
		t.Errorf("nginx logged %d streams over HTTP/2, want at least %d\n%s", h2, kills+1, lb.proc.Output())
	}
	// The page received each block once, but for at most one per kill;
	// every stream after the first started at the block after the last one
	// it had received.
	twice := c.Progress.Duplicates + c.Progress.Corrupt
	if twice > kills {
		t.Errorf("%d blocks received twice (%d duplicate, %d corrupt), want at most %d: one per kill",
			twice, c.Progress.Duplicates, c.Progress.Corrupt, kills)
	}
	streams := c.entries("stream")
	if len(streams) < kills+1 {
		t.Fatalf("the page saw %d streams, want at least %d: one, and one more after each kill", len(streams), kills+1)
	}
	for i, e := range streams[1:] {
		if want := max(e.Last+bs, 0); e.Start != want { // Last is -1 before the first block
			t.Errorf("stream %d starts at %d, want %d: the block after the last one received (%d)", i+2, e.Start, want, e.Last)
		}
	}
	// The download ended on a live replica, in a stream that continued one
	// of the dead replicas' streams.
	var finished []string
	var served int64 // bytes of blocks the live replicas sent
	for _, r := range live {
		for _, st := range r.log.streams(name) {
			served += min(st.Blocks*bs, size-st.Start)
			if st.Outcome == "complete" && st.End == size {
				finished = append(finished, fmt.Sprintf("%s from %d MiB", r.name, st.Start>>20))
				if st.Start == 0 {
					t.Errorf("%s streamed the whole file: no stream was continued after the kills", r.name)
				}
			}
		}
	}
	if len(finished) != 1 {
		t.Errorf("want one complete stream on a live replica, got %v", finished)
	}
	t.Logf("%d MiB through nginx (HTTP/2, TLS) in %v (%.0f MB/s); killed %v; finished on %v; %d streams, %d reconnects; "+
		"%d blocks received twice: %d bytes of blocks received for %d; nginx sent %d bytes of events (%.3f times the size: base64), the live replicas %d bytes of blocks",
		size>>20, took.Round(time.Millisecond), float64(size)/1e6/took.Seconds(), killed, finished, len(streams), c.Progress.Reconnects,
		twice, size+int64(twice)*bs, size, sent, float64(sent)/size, served)
}
