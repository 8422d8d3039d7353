package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server/servertest"
)

// serveProc is a `ferry serve` process.
type serveProc struct {
	cmd  *exec.Cmd
	addr string        // host:port it listens on
	logs *bytes.Buffer // its JSON log on stderr; read it after wait
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, once done
}

var listening = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)

// startServe starts ferry serve on addr (port 0: any) with 16 KiB blocks
// and a 50 ms retry hint, and waits until it listens. It fails, without
// failing t, if the process exits first (its port is taken, say).
func startServe(t *testing.T, root, addr, cacheDir string) (*serveProc, error) {
	t.Helper()
	return startServeWith(t, nil, "--root", root, "--addr", addr, "--block-size", "16KiB",
		"--retry", "50ms", "--log", "json", "--cache-dir", cacheDir)
}

// startServeWith starts ferry serve with args, and env added to the
// environment, and waits until it listens.
func startServeWith(t *testing.T, env []string, args ...string) (*serveProc, error) {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	addr := "?"
	for i, a := range args {
		if a == "--addr" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, logs: new(bytes.Buffer), done: make(chan struct{})}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, rerr := bufio.NewReader(stdout).ReadString('\n')
	go func() { // exits when the process ends and Wait closes the pipe
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	m := listening.FindStringSubmatch(line)
	if rerr != nil || m == nil {
		<-p.done
		return nil, fmt.Errorf("ferry serve --addr %s did not start (%q, %v): %s", addr, line, p.err, p.logs)
	}
	p.addr = m[1]
	return p, nil
}

// restartServe starts ferry serve again on the same address, retrying
// while the port is not yet free, for up to 10 s.
func restartServe(t *testing.T, root, addr, cacheDir string) *serveProc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := startServe(t, root, addr, cacheDir)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// stop sends sig and waits up to 10 s for the process to exit.
func (p *serveProc) stop(t *testing.T, sig syscall.Signal) time.Duration {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("ferry serve still running 10s after %v", sig)
	}
	return time.Since(start)
}

// getProc is a `ferry get --progress line` process.
type getProc struct {
	cmd        *exec.Cmd
	stdout     bytes.Buffer
	pct        atomic.Int64  // highest percentage its progress lines reported
	reconnects atomic.Int64  // "reconnecting" messages
	line       chan struct{} // receives a value after each line of stderr
	mu         sync.Mutex
	lines      []string // stderr
	done       chan struct{}
}

var percent = regexp.MustCompile(`^ferry: \S+\s+(\d+)%`)

func startGetLines(t *testing.T, args ...string) *getProc {
	t.Helper()
	g := &getProc{line: make(chan struct{}, 1), done: make(chan struct{})}
	g.pct.Store(-1)
	g.cmd = exec.Command(ferryBin, append([]string{"get", "--progress", "line"}, args...)...)
	g.cmd.Stdout = &g.stdout
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // exits when the process closes stderr
		defer close(g.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			g.mu.Lock()
			g.lines = append(g.lines, sc.Text())
			g.mu.Unlock()
			if m := percent.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				g.pct.Store(max(n, g.pct.Load()))
			}
			if strings.Contains(sc.Text(), "reconnecting at offset") {
				g.reconnects.Add(1)
			}
			select {
			case g.line <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { g.cmd.Process.Kill(); <-g.done; g.cmd.Wait() })
	return g
}

func (g *getProc) stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.lines, "\n")
}

// waitUntil waits until cond holds, checking it after each line ferry get
// writes to stderr.
func (g *getProc) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-g.line:
		case <-g.done:
			if !cond() {
				t.Fatalf("ferry get ended before %s:\n%s", what, g.stderr())
			}
		case <-deadline:
			t.Fatalf("ferry get: no %s after 30s:\n%s", what, g.stderr())
		}
	}
}

// wait waits up to 60 s for the process and returns its exit code.
func (g *getProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry get still running after 60s:\n%s", g.stderr())
	}
	g.cmd.Wait()
	return g.cmd.ProcessState.ExitCode()
}

// TestServerRestartsMidDownload stops the ferry serve process three times
// while ferry get downloads through a throttling proxy, and starts it again
// on the same port each time: SIGKILL (a crash: streams cut mid-event, the
// manifest cache possibly half-written) and SIGTERM (a graceful restart:
// streams end after their current block, without an end event). ferry get
// keeps going and ends with the file byte-identical, having fetched each
// block about once. The proxy throttles until the last restart, so that
// every stop lands mid-stream, then lets the rest through at full speed.
func TestServerRestartsMidDownload(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// The sockets between server and client hold megabytes: the
			// file is large enough that the server is still streaming
			// when it is stopped, and the proxy throttles until then.
			data := make([]byte, 32<<20)
			rand.NewChaCha8([32]byte{byte(sig)}).Read(data)
			root, cache := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			srv, err := startServe(t, root, "127.0.0.1:0", cache)
			if err != nil {
				t.Fatal(err)
			}
			addr := srv.addr
			var throttle atomic.Int64
			throttle.Store(8 << 20)
			proxy, err := servertest.NewProxy(addr, func(int) servertest.Fault { return servertest.Fault{BytesPerSecond: throttle.Load()} })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			out := filepath.Join(t.TempDir(), "f.bin")
			start := time.Now()
			get := startGetLines(t, "http://"+proxy.Addr+"/sse/f.bin", "-o", out, "--retries", "30", "--idle-timeout", "5s", "--json")
			var stops []time.Duration
			for i := range int64(3) {
				// Stop the server once the client has reconnected to it
				// (or, the first time, connected) and made progress: not
				// while it still drains what the previous one had sent.
				get.waitUntil(t, fmt.Sprint("reconnect ", i), func() bool { return get.reconnects.Load() >= i })
				// At least 1%: ferry get reports 0% before it has connected.
				from := max(get.pct.Load(), 0)
				get.waitUntil(t, fmt.Sprintf("progress past %d%%", from), func() bool { return get.pct.Load() > from })
				stops = append(stops, srv.stop(t, sig))
				if sig == syscall.SIGTERM {
					if srv.err != nil {
						t.Errorf("ferry serve exited with %v after SIGTERM", srv.err)
					}
					if !strings.Contains(srv.logs.String(), `"outcome":"shutdown"`) {
						t.Errorf("no stream ended with outcome shutdown:\n%s", srv.logs)
					}
				}
				srv = restartServe(t, root, addr, cache)
			}
			throttle.Store(0)
			if code := get.wait(t); code != 0 {
				t.Fatalf("ferry get exit %d:\n%s", code, get.stderr())
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s differs from the served file (sha256 %s, want %s)", out, sha(got), sha(data))
			}
			s := parseSummary(t, get.stdout.String())
			if s.Reconnects < 3 {
				t.Errorf("%d reconnects for 3 restarts:\n%s", s.Reconnects, get.stderr())
			}
			if max := int64(len(data)) + 3*testBS; s.BytesFetched > max {
				t.Errorf("fetched %d bytes, want at most %d: the size plus one block per restart", s.BytesFetched, max)
			}
			t.Logf("3 × %v: done in %v, %d reconnects, %d bytes fetched for %d; the server took %v to stop",
				sig, time.Since(start).Round(time.Millisecond), s.Reconnects, s.BytesFetched, len(data), stops)
		})
	}
}

// underFileSizeLimit runs ferry with RLIMIT_FSIZE set to limit bytes, as
// `ulimit -f` in a shell does: writes past that offset fail with EFBIG (and
// raise SIGXFSZ, which Go ignores).
func underFileSizeLimit(t *testing.T, limit int64, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// POSIX sh counts ulimit -f in blocks of 512 bytes.
	script := fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, limit/512)
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, ferryBin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("ferry %v under ulimit -f died of %v:\n%s", args, ws.Signal(), errb.String())
		}
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatalf("ferry %v: %v", args, err)
	}
	return 0, out.String(), errb.String()
}

// TestFileSizeLimitExit9 runs ferry get with a file size limit below the
// size of the download (`ulimit -f`): the disk error path of a real process.
// A fresh download fails at once (the partial file is sized up front); a
// resumed one writes the blocks below the limit and fails at the first one
// past it. Both exit 9 with the state kept, and a rerun without the limit
// completes.
func TestFileSizeLimitExit9(t *testing.T) {
	data := randomData(22, 64*testBS)
	const limit = 40 * testBS
	var cutting atomic.Bool
	cutting.Store(true)
	f := newFixture(t, data, func(int) servertest.Fault {
		if cutting.Load() {
			return servertest.Fault{CutAt: 20 * testBS}
		}
		return servertest.Fault{}
	})
	dir := t.TempDir()

	t.Run("fresh", func(t *testing.T) {
		out := filepath.Join(dir, "fresh.bin")
		code, _, stderr := underFileSizeLimit(t, limit, "get", f.url(), "-o", out, "--progress", "none")
		if code != exitDisk || !strings.Contains(stderr, "file too large") {
			t.Fatalf("fresh download past ulimit -f: exit %d, want %d (file too large):\n%s", code, exitDisk, stderr)
		}
		code, _, stderr = ferry(t, "get", f.url(), "-o", out, "--progress", "none")
		if code != 0 {
			t.Fatalf("rerun without the limit: exit %d:\n%s", code, stderr)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
			t.Fatal("the rerun's file differs from the source")
		}
	})

	t.Run("resumed", func(t *testing.T) {
		out := filepath.Join(dir, "resumed.bin")
		if code, _, stderr := ferry(t, "get", f.url(), "-o", out, "--retries", "0", "--progress", "none"); code != exitNetwork {
			t.Fatalf("cut download: exit %d, want %d:\n%s", code, exitNetwork, stderr)
		}
		cutting.Store(false)
		defer cutting.Store(true)
		code, _, stderr := underFileSizeLimit(t, limit, "get", f.url(), "-o", out, "--progress", "line")
		if code != exitDisk || !strings.Contains(stderr, "file too large") {
			t.Fatalf("resumed download past ulimit -f: exit %d, want %d (file too large):\n%s", code, exitDisk, stderr)
		}
		if _, err := os.Stat(out + ".ferry-state"); err != nil {
			t.Fatalf("no state kept after the disk error: %v", err)
		}
		part, _ := os.ReadFile(out + ".part")
		if v := validBlocks(part, data); v < limit {
			t.Errorf("%d bytes valid on disk after the disk error, want the %d below the limit", v, limit)
		}
		code, stdout, stderr := ferry(t, "get", f.url(), "-o", out, "--json", "--progress", "none")
		if code != 0 {
			t.Fatalf("rerun without the limit: exit %d:\n%s", code, stderr)
		}
		s := parseSummary(t, stdout)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) || s.SHA256 != sha(data) {
			t.Fatal("the rerun's file differs from the source")
		}
		if s.BytesReused < limit {
			t.Errorf("the rerun reused %d bytes, want at least the %d written under the limit", s.BytesReused, limit)
		}
	})
}
