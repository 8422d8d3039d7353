package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/client"
	"github.com/ferry-dev/ferry/server/servertest"
)

// The writer process of the follow tests: the test binary run again with
// FERRY_TEST_WRITER set (see TestMain). It appends randomData(seed, size)
// to path in chunks, one per tick of every, printing "wrote N" after each
// and "closed" once the file is closed; with truncate > 0 it truncates the
// file to 0 after that many bytes and writes randomData(seed+1, size)
// instead, a rebuild in place.
type writerSpec struct {
	Path               string
	Size, Chunk, Trunc int
	Seed               uint64
	Every              time.Duration
}

func (w writerSpec) env() string {
	return fmt.Sprintf("FERRY_TEST_WRITER=%s|%d|%d|%d|%d|%s", w.Path, w.Size, w.Chunk, w.Trunc, w.Seed, w.Every)
}

// runWriter is the writer process's main.
func runWriter(spec string) int {
	var w writerSpec
	parts := strings.Split(spec, "|")
	if len(parts) != 6 {
		return 2
	}
	w.Path = parts[0]
	w.Size, _ = strconv.Atoi(parts[1])
	w.Chunk, _ = strconv.Atoi(parts[2])
	w.Trunc, _ = strconv.Atoi(parts[3])
	w.Seed, _ = strconv.ParseUint(parts[4], 10, 64)
	w.Every, _ = time.ParseDuration(parts[5])
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	data := randomData(w.Seed, w.Size)
	tick := time.NewTicker(w.Every)
	defer tick.Stop()
	for off := 0; off < len(data); {
		if w.Trunc > 0 && off >= w.Trunc {
			f.Truncate(0)
			f.Seek(0, 0)
			data, off, w.Trunc = randomData(w.Seed+1, w.Size), 0, 0
			fmt.Println("truncated")
		}
		n := min(w.Chunk, len(data)-off)
		if _, err := f.Write(data[off : off+n]); err != nil {
			fmt.Println(err)
			return 1
		}
		off += n
		fmt.Println("wrote", off)
		<-tick.C
	}
	if err := f.Close(); err != nil {
		return 1
	}
	fmt.Println("closed")
	return 0
}

// writerProc is a running writer process.
type writerProc struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, closed when it exits
}

func startWriter(t *testing.T, w writerSpec) *writerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), w.env())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &writerProc{cmd: cmd, lines: make(chan string, 1<<12)}
	go func() { // exits when the process closes stdout
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

// until reads the writer's lines until one satisfies ok, and returns the
// time it came.
func (p *writerProc) until(t *testing.T, what string, ok func(string) bool) time.Time {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line, open := <-p.lines:
			if !open {
				t.Fatalf("the writer exited before %s", what)
			}
			if ok(line) {
				return time.Now()
			}
		case <-deadline:
			t.Fatalf("the writer: no %s within 60 s", what)
		}
	}
}

func wrote(n int) func(string) bool {
	return func(line string) bool {
		v, err := strconv.Atoi(strings.TrimPrefix(line, "wrote "))
		return err == nil && v >= n
	}
}

func isLine(s string) func(string) bool { return func(line string) bool { return line == s } }

// followServe starts ferry serve over root with a 1 s heartbeat, and a
// proxy in front that applies plan.
func followServe(t *testing.T, root string, plan func(int) servertest.Fault, args ...string) (*serveProc, *servertest.Proxy) {
	t.Helper()
	p, err := startServeWith(t, nil, append([]string{"--root", root, "--addr", "127.0.0.1:0", "--block-size", "16KiB",
		"--retry", "50ms", "--heartbeat", "1s", "--log", "json", "--no-cache"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := servertest.NewProxy(p.addr, plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return p, proxy
}

const followHeartbeat = time.Second

// ferry get --follow of a file a writer process is still writing, through
// a proxy that cuts the first two connections: the download starts before
// the file exists, follows it as it grows, and finishes byte-identical no
// later than one heartbeat after the writer closed the file.
func TestFollowWriterProcess(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	_, proxy := followServe(t, root, func(i int) servertest.Fault {
		if i < 2 {
			return servertest.Fault{CutAt: 300 << 10}
		}
		return servertest.Fault{}
	})
	spec := writerSpec{Path: filepath.Join(root, "app.tar.gz"), Size: 6<<20 + 123, Chunk: 64 << 10, Seed: 60, Every: 20 * time.Millisecond}
	out := filepath.Join(dir, "app.tar.gz")
	get := startGetLines(t, "http://"+proxy.Addr+"/sse/app.tar.gz", "-o", out, "--follow", "--json")
	w := startWriter(t, spec)
	closed := w.until(t, "close", isLine("closed"))
	code := get.wait(t)
	took := time.Since(closed)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, get.stderr())
	}
	got, _ := os.ReadFile(out)
	if sha(got) != sha(randomData(spec.Seed, spec.Size)) {
		t.Fatalf("the download (%d bytes) is not the file written (%d)", len(got), spec.Size)
	}
	if took > followHeartbeat {
		t.Errorf("ferry get ended %v after the writer closed the file, more than one heartbeat (%v)", took, followHeartbeat)
	}
	s := parseSummary(t, get.stdout.String())
	if s.Reconnects < 2 || s.BytesFetched > int64(spec.Size)+2*testBS {
		t.Errorf("reconnects %d, bytes fetched %d: want the 2 cuts resumed, each block about once", s.Reconnects, s.BytesFetched)
	}
	t.Logf("done %v after the writer's close; %d reconnects", took.Round(time.Millisecond), s.Reconnects)
}

// A writer killed with SIGKILL closes the file as it dies: the follower
// ends with what it wrote, verified.
func TestFollowWriterKilled(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	_, proxy := followServe(t, root, nil)
	spec := writerSpec{Path: filepath.Join(root, "build.log"), Size: 8 << 20, Chunk: 40 << 10, Seed: 61, Every: 10 * time.Millisecond}
	w := startWriter(t, spec)
	w.until(t, "a first megabyte", wrote(1<<20))
	out := filepath.Join(dir, "build.log")
	get := startGetLines(t, "http://"+proxy.Addr+"/sse/build.log", "-o", out, "--follow")
	w.until(t, "two megabytes", wrote(2<<20))
	w.cmd.Process.Kill()
	w.cmd.Wait()
	if code := get.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, get.stderr())
	}
	want, _ := os.ReadFile(spec.Path)
	got, _ := os.ReadFile(out)
	if len(want) < 2<<20 || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes; the file the killed writer left has %d", len(got), len(want))
	}
}

// A rebuild that truncates the file mid-follow and writes another one in
// its place: the follower learns of it, keeps nothing of the old build,
// and ends with the new one; with --strict it stops with exit 7.
func TestFollowTruncatedMidFollow(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			root, dir := t.TempDir(), t.TempDir()
			_, proxy := followServe(t, root, nil)
			spec := writerSpec{Path: filepath.Join(root, "out.bin"), Size: 3 << 20, Chunk: 64 << 10, Trunc: 1 << 20, Seed: 62, Every: 10 * time.Millisecond}
			w := startWriter(t, spec)
			w.until(t, "a first block", wrote(64<<10))
			out := filepath.Join(dir, "out.bin")
			args := []string{"http://" + proxy.Addr + "/sse/out.bin", "-o", out, "--follow"}
			if strict {
				args = append(args, "--strict")
			}
			get := startGetLines(t, args...)
			w.until(t, "close", isLine("closed"))
			code := get.wait(t)
			if strict {
				if code != exitChanged {
					t.Fatalf("--strict: exit %d, want %d\n%s", code, exitChanged, get.stderr())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, get.stderr())
			}
			got, _ := os.ReadFile(out)
			if sha(got) != sha(randomData(spec.Seed+1, spec.Size)) {
				t.Fatalf("got %d bytes, not the rebuilt file", len(got))
			}
			if !strings.Contains(get.stderr(), "truncated or replaced") {
				t.Errorf("ferry get did not say the file was rebuilt:\n%s", get.stderr())
			}
		})
	}
}

// ferry get --follow killed with SIGKILL mid-follow and run again: the
// second run checks what the first wrote against the live manifest and
// follows on from there.
func TestFollowGetKilledAndRerun(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	p, proxy := followServe(t, root, nil)
	spec := writerSpec{Path: filepath.Join(root, "big.bin"), Size: 6 << 20, Chunk: 64 << 10, Seed: 63, Every: 15 * time.Millisecond}
	w := startWriter(t, spec)
	out := filepath.Join(dir, "big.bin")
	u := "http://" + proxy.Addr + "/sse/big.bin"
	first, progress := startGet(t, u, "-o", out, "--follow")
	waitFor(t, progress, 1<<20)
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	part, _ := os.ReadFile(out + ".part")
	held := validBlocks(part, randomData(spec.Seed, spec.Size))

	code, stdout, stderr := ferry(t, "get", u, "-o", out, "--follow", "--json")
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, stderr, p.logs)
	}
	w.until(t, "close", isLine("closed")) // the rerun cannot end before it
	got, _ := os.ReadFile(out)
	if sha(got) != sha(randomData(spec.Seed, spec.Size)) {
		t.Fatalf("got %d bytes, not the file written", len(got))
	}
	s := parseSummary(t, stdout)
	if !s.Resumed || s.BytesReused < held-2*testBS || held < 1<<20-testBS {
		t.Errorf("resumed %v, reused %d; the first run left %d verified bytes", s.Resumed, s.BytesReused, held)
	}
}

// 100 followers of one growing file on this machine's cores: every one
// ends byte-identical, and the server hashed the file once for them all.
func TestHundredFollowers(t *testing.T) {
	if testing.Short() {
		t.Skip("100 followers: not in -short")
	}
	root, dir := t.TempDir(), t.TempDir()
	p, _ := followServe(t, root, nil, "--max-streams", "0")
	spec := writerSpec{Path: filepath.Join(root, "shared.bin"), Size: 4 << 20, Chunk: 32 << 10, Seed: 64, Every: 10 * time.Millisecond}
	w := startWriter(t, spec)
	w.until(t, "a first block", wrote(32<<10))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &client.Client{}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			out := filepath.Join(dir, strconv.Itoa(i))
			if _, err := c.Download(ctx, "http://"+p.addr+"/sse/shared.bin", out, client.Options{Follow: true}); err != nil {
				errs <- fmt.Errorf("follower %d: %w", i, err)
			}
		})
	}
	w.until(t, "close", isLine("closed"))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := sha(randomData(spec.Seed, spec.Size))
	for i := range 100 {
		if got, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(i))); sha(got) != want {
			t.Fatalf("follower %d: %d bytes, not the file written", i, len(got))
		}
	}
	p.stop(t, syscall.SIGTERM)
	if n := strings.Count(p.logs.String(), `"msg":"live file complete"`); n != 1 {
		t.Errorf("the server completed the live file %d times, want once: one tracker for all followers", n)
	}
}
