package web_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server/servertest"
)

// The follow tests download a file that another process is still writing,
// with the page's "Wait for it" box checked (docs/PROTOCOL.md, "Live
// files"). The writer is the test binary itself, run again as
// TestFollowWriterProcess: it writes the head of the file at once, holds it
// open until the page follows it, then appends the rest at a paced rate and
// closes it.

const (
	followHeartbeat = 2 * time.Second // the server's, so that the end is due within it
	followHead      = 1 << 20         // bytes written before the page starts
	followWrite     = 64 << 10        // bytes per paced write
	followPace      = 40 * time.Millisecond

	// writerEnv names the file the writer process writes; writerSizeEnv
	// and writerSeedEnv its size and the seed of its bytes. With
	// writerRewriteEnv, a seed, the writer truncates the file half way and
	// writes it again from that seed (a new build over the old).
	writerEnv        = "FERRY_FOLLOW_WRITER"
	writerSizeEnv    = "FERRY_FOLLOW_SIZE"
	writerSeedEnv    = "FERRY_FOLLOW_SEED"
	writerRewriteEnv = "FERRY_FOLLOW_REWRITE"

	// The writer's lines on stdout.
	writerStarted = "ferry-writer: started"
	writerClosed  = "ferry-writer: closed " // then Unix milliseconds
	writerGo      = "go"                    // on its stdin: write the rest
)

// TestFollowWriterProcess is the writer of the follow tests, as a process of
// its own (writer starts it); run any other way it skips. It creates the
// file, writes followHead bytes, says so, waits for writerGo on stdin, then
// writes the rest in followWrite pieces, one per tick of followPace, keeping
// the file open until the last, closes it and prints when. With
// writerRewriteEnv it truncates the file half way and writes it again, paced
// the same way, from that seed.
func TestFollowWriterProcess(t *testing.T) {
	path := os.Getenv(writerEnv)
	if path == "" {
		t.Skip("the writer process of the follow tests: runs only as their child")
	}
	size, err := strconv.Atoi(os.Getenv(writerSizeEnv))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := strconv.ParseUint(os.Getenv(writerSeedEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	data := sample(seed, size)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:followHead]); err != nil {
		t.Fatal(err)
	}
	fmt.Println(writerStarted)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != writerGo {
		t.Fatalf("writer: read %q, %v from stdin, want %q: the test is gone", line, err, writerGo)
	}
	tick := time.NewTicker(followPace)
	defer tick.Stop()
	write := func(data []byte, from, to int) {
		for at := from; at < to; at += followWrite {
			<-tick.C
			if _, err := f.Write(data[at:min(at+followWrite, to)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if env := os.Getenv(writerRewriteEnv); env != "" {
		seed, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		write(data, followHead, size/2)
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		data = sample(seed, size)
		write(data, 0, followHead)
	}
	write(data, followHead, size)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%d\n", writerClosed, time.Now().UnixMilli())
}

// writer is a TestFollowWriterProcess process.
type writer struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started chan struct{}  // closed once the head is written
	closed  chan time.Time // receives when the writer closed the file
	done    chan struct{}  // closed once its stdout ended and it exited
	out     *logBuffer     // its stderr and the lines of stdout that are not its own
	err     error          // its exit, once done is closed
}

// startWriter starts a writer of size bytes from seed at path (and env,
// writerRewriteEnv) and waits until it has written the head.
func startWriter(t *testing.T, path string, seed uint64, size int, env ...string) *writer {
	t.Helper()
	w := &writer{started: make(chan struct{}), closed: make(chan time.Time, 1), done: make(chan struct{}), out: &logBuffer{}}
	w.cmd = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFollowWriterProcess$", "-test.count=1")
	w.cmd.Env = append(os.Environ(), writerEnv+"="+path, writerSizeEnv+"="+strconv.Itoa(size),
		writerSeedEnv+"="+strconv.FormatUint(seed, 10))
	w.cmd.Env = append(w.cmd.Env, env...)
	w.cmd.Stderr = w.out
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends with the writer's stdout
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == writerStarted:
				close(w.started)
			case strings.HasPrefix(line, writerClosed):
				ms, _ := strconv.ParseInt(strings.TrimPrefix(line, writerClosed), 10, 64)
				w.closed <- time.UnixMilli(ms)
			default:
				fmt.Fprintln(w.out, line)
			}
		}
		w.err = w.cmd.Wait()
	}()
	t.Cleanup(func() { w.stdin.Close(); <-w.done })
	select {
	case <-w.started:
	case <-w.done:
		t.Fatalf("the writer exited before writing the head: %v\n%s", w.err, w.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the writer did not write the head in 30 s\n%s", w.out.String())
	}
	return w
}

// release lets the writer write the rest of the file.
func (w *writer) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(w.stdin, writerGo+"\n"); err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// waitClosed waits until the writer has closed the file and returns when
// it did.
func (w *writer) waitClosed(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-w.closed:
		return at
	case <-w.done:
		t.Fatalf("the writer exited without closing the file: %v\n%s", w.err, w.out.String())
	case <-time.After(time.Minute):
		t.Fatalf("the writer did not close the file in a minute\n%s", w.out.String())
	}
	return time.Time{}
}

// followResult is what follow.mjs prints at the end.
type followResult struct {
	Card   card         `json:"card"`
	DoneAt int64        `json:"doneAt"` // Unix ms at which the card turned done
	Before int64        `json:"before"` // verified bytes just before the reload, if any
	Module moduleResult `json:"module"` // the module's own download, in strict mode
}

// moduleResult is how a download of the module itself ended.
type moduleResult struct {
	State   string `json:"state"`
	Error   string `json:"error"` // FerryError.code
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// followRun is one run of follow: the writer's seed, env and follow.mjs's
// extra args.
type followRun struct {
	seed uint64
	env  []string
	args []string
}

// follow runs a writer of size bytes and follow.mjs against s: the page
// starts once the writer has written the head, and the writer writes the
// rest once the page follows the file live. It returns the page's result,
// the writer's close and the bytes the writer wrote first.
func follow(t *testing.T, s *site, name string, size int, r followRun) (followResult, time.Time, []byte) {
	t.Helper()
	w := startWriter(t, filepath.Join(s.root, name), r.seed, size, r.env...)
	f := startFollower(t, "follow.mjs", append([]string{s.base, name}, r.args...)...)
	// total is -1 with bytes verified only while the file is live: the page
	// follows it.
	f.waitUntil(t, "a live download", func(p pageProgress) bool { return p.Total < 0 && p.Bytes > 0 })
	w.release(t)
	closed := w.waitClosed(t)
	var got followResult
	f.wait(t, &got)
	return got, closed, sample(r.seed, size)
}

// checkLive fails unless the page saw a live stream, and took the file as
// one version throughout (its completion is no change).
func checkLive(t *testing.T, c card) {
	t.Helper()
	if ch := c.entries("changed"); len(ch) > 0 {
		t.Errorf("the page saw the file change: %+v", ch)
	}
	for _, e := range c.entries("stream") {
		if strings.Contains(e.Text, "live") {
			return
		}
	}
	t.Errorf("the page saw no live stream: %+v", c.entries("stream"))
}

func TestBrowserFollow(t *testing.T) {
	need(t, true)
	s := startSiteWith(t, nil, siteOptions{heartbeat: followHeartbeat})
	const size = 8<<20 + 20000 // the last block is short
	got, closed, want := follow(t, s, "build.bin", size, followRun{seed: 21})
	checkIdentical(t, "build.bin", got.Card, want)
	checkLive(t, got.Card)
	took := time.UnixMilli(got.DoneAt).Sub(closed)
	if limit := followHeartbeat + time.Second; got.DoneAt == 0 || took > limit {
		t.Errorf("the page was done %v after the writer closed the file, want at most %v (a heartbeat and a second)", took, limit)
	}
	if c := got.Card.Progress; c.Corrupt != 0 || c.Duplicates != 0 {
		t.Errorf("%d corrupt and %d duplicate blocks on a clean link, want 0", c.Corrupt, c.Duplicates)
	}
	for _, st := range s.log.waitStreams(t, "build.bin", 1) {
		if st.Outcome != "complete" {
			t.Errorf("server stream from %d: outcome %q, want complete", st.Start, st.Outcome)
		}
	}
	t.Logf("writer closed → page done: %v", took)
}

func TestBrowserFollowThroughCuts(t *testing.T) {
	need(t, true)
	const cutAt = 1_000_000 // bytes of each connection: every stream is cut
	s := startSiteWith(t, nil, siteOptions{heartbeat: followHeartbeat,
		plan: func(int) servertest.Fault { return servertest.Fault{CutAt: cutAt} }})
	const size = 8 << 20 // whole blocks: the end event alone gives the size
	got, closed, want := follow(t, s, "cut.bin", size, followRun{seed: 22})
	checkIdentical(t, "cut.bin", got.Card, want)
	checkLive(t, got.Card)
	if r := got.Card.Progress.Reconnects; r < 3 {
		t.Errorf("%d reconnects, want at least 3 (a cut every %d bytes of a %d-byte file)", r, cutAt, size)
	}
	t.Logf("%d reconnects, %d streams; writer closed → page done: %v",
		got.Card.Progress.Reconnects, got.Card.Progress.Streams, time.UnixMilli(got.DoneAt).Sub(closed))
}

func TestBrowserFollowReloadResumesFromOPFS(t *testing.T) {
	need(t, true)
	s := startSiteWith(t, nil, siteOptions{heartbeat: followHeartbeat})
	const size = 8<<20 + 5000
	got, closed, want := follow(t, s, "reload.bin", size, followRun{seed: 23, args: []string{strconv.Itoa(followHead + 1<<20)}})
	checkIdentical(t, "reload.bin", got.Card, want)
	checkLive(t, got.Card)
	if got.Before < followHead+(1<<20) || got.Before >= size {
		t.Fatalf("reloaded with %d of %d bytes verified, want at least %d and not all", got.Before, size, followHead+(1<<20))
	}
	// The card after the reload resumed from storage, as a follow: its
	// first stream starts after the stored blocks.
	if n := len(got.Card.entries("resume")); n != 1 {
		t.Errorf("page log has %d resume entries, want 1: %+v", n, got.Card.Log)
	}
	streams := got.Card.entries("stream")
	if len(streams) == 0 || streams[0].Start == 0 {
		t.Errorf("after the reload the first stream starts at 0, want after the stored blocks: %+v", got.Card.Log)
	}
	t.Logf("reloaded at %d bytes; streams after it: %+v; writer closed → page done: %v",
		got.Before, streams, time.UnixMilli(got.DoneAt).Sub(closed))
}

func TestBrowserFollowTruncatedRestarts(t *testing.T) {
	need(t, true)
	s := startSiteWith(t, nil, siteOptions{heartbeat: followHeartbeat})
	const size = 4<<20 + 3000
	const rewrite = 25
	got, closed, old := follow(t, s, "rebuilt.bin", size, followRun{seed: 24, env: []string{writerRewriteEnv + "=" + strconv.Itoa(rewrite)}})
	want := sample(rewrite, size)
	checkIdentical(t, "rebuilt.bin", got.Card, want)
	if sha(old) == sha(want) {
		t.Fatal("the rewrite has the bytes of the first build")
	}
	// The truncation is a change of version: one, restarted against, with
	// the notice.
	changes := got.Card.entries("changed")
	if len(changes) == 0 || !strings.Contains(changes[0].Text, "truncated") {
		t.Errorf("page log has no change for the truncation: %+v", got.Card.Log)
	}
	if !strings.Contains(got.Card.Notice, "changed") {
		t.Errorf("notice %q, want one saying the file changed", got.Card.Notice)
	}
	t.Logf("changes: %+v; writer closed → page done: %v", changes, time.UnixMilli(got.DoneAt).Sub(closed))
}

func TestBrowserFollowStrictFailsOnTruncation(t *testing.T) {
	need(t, true)
	s := startSiteWith(t, nil, siteOptions{heartbeat: followHeartbeat})
	const size = 4 << 20
	got, _, _ := follow(t, s, "strict.bin", size, followRun{seed: 26, env: []string{writerRewriteEnv + "=27"}, args: []string{"strict"}})
	m := got.Module
	if m.State != "error" || m.Error != "changed" || m.Status != 412 || !strings.Contains(m.Message, "truncated") {
		t.Errorf("module with onChange fail: %+v, want error changed, status 412, saying the file was truncated or replaced", m)
	}
}
