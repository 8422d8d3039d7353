package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

// ferryBin is the ferry binary built for these tests: crash and signal
// behaviour is about real processes.
var ferryBin string

func TestMain(m *testing.M) {
	if spec := os.Getenv("FERRY_TEST_WRITER"); spec != "" {
		os.Exit(runWriter(spec)) // a writer process of the follow tests
	}
	dir, err := os.MkdirTemp("", "ferry-bin-")
	if err != nil {
		panic(err)
	}
	ferryBin = filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", ferryBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testBS = 16 << 10

type fixture struct {
	root  string
	ts    *httptest.Server
	proxy *servertest.Proxy
}

func newFixture(t *testing.T, data []byte, plan func(int) servertest.Fault) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.root, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Root: f.root, BlockSize: testBS, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(srv)
	f.proxy, err = servertest.NewProxy(f.ts.Listener.Addr().String(), plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.proxy.Close(); f.ts.Close(); srv.Close() })
	return f
}

func (f *fixture) url() string { return "http://" + f.proxy.Addr + "/sse/f.bin" }

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ferry runs the binary to completion and returns its exit code and output.
func ferry(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatalf("ferry %v: %v", args, err)
	}
	return 0, out.String(), errb.String()
}

type summary struct {
	SHA256          string `json:"sha256"`
	BytesFetched    int64  `json:"bytes_fetched"`
	BytesReused     int64  `json:"bytes_reused"`
	BlocksRefetched int    `json:"blocks_refetched"`
	Reconnects      int    `json:"reconnects"`
	Resumed         bool   `json:"resumed"`
}

func parseSummary(t *testing.T, stdout string) summary {
	t.Helper()
	var s summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	return s
}

// startGet starts ferry get and returns it with a channel of the byte
// counts its json progress reports.
func startGet(t *testing.T, args ...string) (*exec.Cmd, <-chan int64) {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"get", "--progress", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1024)
	go func() { // exits when the process closes stderr
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var ev struct {
				Event string `json:"event"`
				Done  int64  `json:"done"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "progress" {
				select {
				case done <- ev.Done:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, done
}

// waitFor reads progress until at least n bytes are done.
func waitFor(t *testing.T, progress <-chan int64, n int64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case d, ok := <-progress:
			if !ok {
				t.Fatal("ferry get ended before reaching the kill point")
			}
			if d >= n {
				return
			}
		case <-deadline:
			t.Fatalf("no progress to %d bytes within 30s", n)
		}
	}
}

// validBlocks counts the blocks of the partial file that equal the source.
func validBlocks(part, src []byte) int64 {
	var n int64
	for i := 0; i*testBS < len(src) && i*testBS < len(part); i++ {
		end := min((i+1)*testBS, len(src))
		if end <= len(part) && bytes.Equal(part[i*testBS:end], src[i*testBS:end]) {
			n += int64(end - i*testBS)
		}
	}
	return n
}

func TestKill9AndRerun(t *testing.T) {
	data := randomData(1, 96*testBS)
	// Throttled, so that the kills land mid-download.
	f := newFixture(t, data, func(int) servertest.Fault { return servertest.Fault{BytesPerSecond: 2 << 20} })
	out := filepath.Join(t.TempDir(), "f.bin")
	for i, at := range []int64{10 * testBS, 40 * testBS, 70 * testBS} {
		cmd, progress := startGet(t, f.url(), "-o", out)
		waitFor(t, progress, at)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		part, err := os.ReadFile(out + ".part")
		if err != nil {
			t.Fatalf("kill %d: no partial file: %v", i, err)
		}
		if v := validBlocks(part, data); v < at {
			t.Fatalf("kill %d at %d bytes: only %d bytes valid on disk", i, at, v)
		}
	}
	part, _ := os.ReadFile(out + ".part")
	missing := int64(len(data)) - validBlocks(part, data)
	f.proxy.SetPlan(nil)
	code, stdout, stderr := ferry(t, "get", f.url(), "-o", out, "--json", "--progress", "line")
	if code != 0 {
		t.Fatalf("rerun exit %d: %s", code, stderr)
	}
	s := parseSummary(t, stdout)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) || s.SHA256 != sha(data) {
		t.Fatal("the rerun's file differs from the source")
	}
	if s.BytesFetched > missing+testBS {
		t.Errorf("rerun fetched %d bytes, want at most the %d missing plus one block", s.BytesFetched, missing)
	}
	if !strings.Contains(stderr, "resuming at block") || !strings.Contains(stderr, "remote unchanged") {
		t.Errorf("rerun does not say where and why it resumed:\n%s", stderr)
	}
}

func TestSignalsSaveState(t *testing.T) {
	data := randomData(2, 64*testBS)
	f := newFixture(t, data, func(int) servertest.Fault { return servertest.Fault{BytesPerSecond: 1 << 20} })
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		t.Run(sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "f.bin")
			cmd, progress := startGet(t, f.url(), "-o", out)
			waitFor(t, progress, 8*testBS)
			cmd.Process.Signal(sig)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != want {
				t.Fatalf("exit code after %v = %d, want %d", sig, code, want)
			}
			if _, err := os.Stat(out + ".ferry-state"); err != nil {
				t.Fatalf("no state after %v: %v", sig, err)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	data := randomData(3, 8*testBS)
	f := newFixture(t, data, nil)
	stall := newFixture(t, data, func(int) servertest.Fault { return servertest.Fault{StallAt: 1} })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "exists.bin"), []byte("other"), 0o644)
	closed := httptest.NewServer(nil)
	closedURL := closed.URL + "/sse/f.bin"
	closed.Close()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"ok", []string{"get", f.url(), "-o", filepath.Join(dir, "ok.bin")}, 0},
		{"already complete", []string{"get", f.url(), "-o", filepath.Join(dir, "ok.bin")}, 0},
		{"no url", []string{"get"}, 2},
		{"bad flag", []string{"get", "--nope", f.url()}, 2},
		{"bad checksum syntax", []string{"get", f.url(), "-o", filepath.Join(dir, "c.bin"), "--checksum", "md5:1"}, 2},
		{"not a ferry url", []string{"get", "http://127.0.0.1:1/x", "-o", filepath.Join(dir, "x")}, 2},
		{"404", []string{"get", strings.Replace(f.url(), "f.bin", "missing.bin", 1), "-o", filepath.Join(dir, "m.bin")}, 3},
		{"network", []string{"get", closedURL, "-o", filepath.Join(dir, "n.bin"), "--retries", "1"}, 4},
		{"stalled", []string{"get", stall.url(), "-o", filepath.Join(dir, "s.bin"), "--idle-timeout", "300ms"}, 5},
		{"max time", []string{"get", stall.url(), "-o", filepath.Join(dir, "t.bin"), "--max-time", "300ms"}, 5},
		{"checksum mismatch", []string{"get", f.url(), "-o", filepath.Join(dir, "c.bin"), "--checksum", "sha256:" + strings.Repeat("ab", 32)}, 6},
		{"disk", []string{"get", f.url(), "-o", filepath.Join(dir, "no-such-dir", "d.bin")}, 9},
		{"exists", []string{"get", f.url(), "-o", filepath.Join(dir, "exists.bin")}, 11},
		{"force", []string{"get", f.url(), "-o", filepath.Join(dir, "exists.bin"), "--force"}, 0},
		{"unknown command", []string{"fly"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := ferry(t, tt.args...)
			if code != tt.code {
				t.Fatalf("ferry %v: exit %d, want %d\n%s", tt.args, code, tt.code, stderr)
			}
			if code != 0 && strings.TrimSpace(stderr) == "" {
				t.Error("failure without a message on stderr")
			}
		})
	}
}

func TestStrictChangedExit7(t *testing.T) {
	data := randomData(4, 32*testBS)
	f := newFixture(t, data, func(int) servertest.Fault { return servertest.Fault{CutAt: 10 * testBS} })
	out := filepath.Join(t.TempDir(), "f.bin")
	if code, _, _ := ferry(t, "get", f.url(), "-o", out, "--retries", "0"); code != 4 {
		t.Fatalf("cut download: exit %d, want 4", code)
	}
	next := randomData(5, 32*testBS)
	os.WriteFile(filepath.Join(f.root, "f.bin"), next, 0o644)
	os.Chtimes(filepath.Join(f.root, "f.bin"), time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	f.proxy.SetPlan(nil)
	if code, _, stderr := ferry(t, "get", f.url(), "-o", out, "--strict"); code != 7 {
		t.Fatalf("--strict after a change: exit %d, want 7\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("--strict handed over a file")
	}
	code, stdout, stderr := ferry(t, "get", f.url(), "-o", out, "--json")
	if code != 0 {
		t.Fatalf("without --strict: exit %d\n%s", code, stderr)
	}
	if s := parseSummary(t, stdout); s.SHA256 != sha(next) {
		t.Fatal("not the new version")
	}
}

func TestLineProgressIsPlain(t *testing.T) {
	data := randomData(6, 40*testBS)
	f := newFixture(t, data, nil)
	code, _, stderr := ferry(t, "get", f.url(), "-o", filepath.Join(t.TempDir(), "f.bin"), "--progress", "line")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Errorf("line progress has \\r or ANSI codes: %q", stderr)
	}
	if n := strings.Count(stderr, "\n"); n > 25 {
		t.Errorf("%d lines of progress for one small file; want at most one per 5%%", n)
	}
}

func TestVerifyCommand(t *testing.T) {
	data := randomData(7, 10*testBS)
	f := newFixture(t, data, nil)
	local := filepath.Join(t.TempDir(), "f.bin")
	bad := bytes.Clone(data)
	bad[3*testBS+5] ^= 0xff
	os.WriteFile(local, bad, 0o644)
	code, stdout, _ := ferry(t, "verify", local, f.url())
	if code != 6 || !strings.Contains(stdout, "bad block 3") {
		t.Fatalf("verify of a damaged file: exit %d, stdout %q; want 6 and block 3", code, stdout)
	}
	os.WriteFile(local, data, 0o644)
	if code, _, stderr := ferry(t, "verify", local, f.url()); code != 0 {
		t.Fatalf("verify of a good file: exit %d: %s", code, stderr)
	}
}

func TestServeShutsDownOnSIGTERM(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "big.bin"), randomData(8, 8<<20), 0o644)
	cmd := exec.Command(ferryBin, "serve", "--root", root, "--addr", "127.0.0.1:0", "--log", "json", "--no-cache")
	stdout, _ := cmd.StdoutPipe()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	if base == "" {
		t.Fatalf("serve did not print its address: %q", line)
	}
	go io.Copy(io.Discard, stdout)
	// A slow reader keeps a stream open across the signal.
	resp, err := http.Get(base + "/sse/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1024)
	io.ReadFull(resp.Body, buf)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve still running 10s after SIGTERM")
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	rest, _ := io.ReadAll(resp.Body)
	if bytes.Contains(rest, []byte("event: end")) {
		t.Error("a stream cut by shutdown ended with an end event")
	}
	if !strings.Contains(logs.String(), `"msg":"stream"`) {
		t.Errorf("no stream access log line:\n%s", logs.String())
	}
}

func TestGenIsPinned(t *testing.T) {
	tests := []struct {
		kind string
		seed uint64
		size int64
		sha  string
	}{
		{"random", 1, 1 << 20, "8f12def7f340d1552b6470e531778151d9bd619d5677f1c17f16e3b3a6b825b1"},
		{"text", 1, 1 << 20, "e2ab16c5dcd02538601cc49bb7b7c2dc9d77ecf24d92fb7becc44f0b55abc986"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := writeSample(&b, tt.kind, tt.seed, tt.size); err != nil {
			t.Fatal(err)
		}
		if int64(b.Len()) != tt.size {
			t.Errorf("%s: %d bytes, want %d", tt.kind, b.Len(), tt.size)
		}
		if got := sha(b.Bytes()); got != tt.sha {
			t.Errorf("%s seed %d: sha256 %s, want %s (the generator changed)", tt.kind, tt.seed, got, tt.sha)
		}
	}
}

func TestTokenAndSignedURL(t *testing.T) {
	root := t.TempDir()
	data := randomData(9, 5*testBS)
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("a signing key of some length\n"), 0o600)
	key, err := readKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Tokens: []string{"tok-12345678"}, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { ts.Close(); srv.Close() }()
	dir := t.TempDir()
	u := ts.URL + "/sse/f.bin"
	if code, _, stderr := ferry(t, "get", u, "-o", filepath.Join(dir, "a.bin")); code != 3 || !strings.Contains(stderr, "401") {
		t.Errorf("without a token: exit %d, want 3 with 401\n%s", code, stderr)
	}
	if code, _, stderr := ferry(t, "get", u, "-o", filepath.Join(dir, "b.bin"), "-H", "Authorization: Bearer tok-12345678"); code != 0 {
		t.Errorf("with -H: exit %d\n%s", code, stderr)
	}
	cmd := exec.Command(ferryBin, "get", u, "-o", filepath.Join(dir, "c.bin"))
	cmd.Env = append(os.Environ(), "FERRY_TOKEN=tok-12345678")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("with FERRY_TOKEN: %v\n%s", err, out)
	}
	code, signed, stderr := ferry(t, "sign", "f.bin", "--root", root, "--key-file", keyFile, "--ttl", "1m", "--base", ts.URL, "--block-size", "16KiB")
	if code != 0 {
		t.Fatalf("sign: exit %d\n%s", code, stderr)
	}
	signed = strings.TrimSpace(signed)
	if code, _, stderr := ferry(t, "get", signed, "-o", filepath.Join(dir, "d.bin")); code != 0 {
		t.Errorf("signed URL: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "d.bin")); !bytes.Equal(got, data) {
		t.Error("the file fetched with a signed URL differs")
	}
	tampered := strings.Replace(signed, "sig=", "sig=0", 1)
	if code, _, stderr := ferry(t, "get", tampered, "-o", filepath.Join(dir, "e.bin")); code != 3 || !strings.Contains(stderr, "403") {
		t.Errorf("tampered signature: exit %d, want 3 with 403\n%s", code, stderr)
	}
}

// TestDemo runs README's first command: every sample file must come through
// the cutting proxy byte-identical, with the SHA-256 of the file on disk.
func TestDemo(t *testing.T) {
	code, stdout, stderr := ferry(t, "demo", "--root", "../../testdata")
	if code != 0 || !strings.Contains(stdout, "every file arrived byte-identical") || strings.Contains(stdout, " NO ") {
		t.Fatalf("ferry demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, " yes  "); n != 7 {
		t.Errorf("%d files verified, want the 7 of testdata:\n%s", n, stdout)
	}
}

// TestVersion: "ferry version" and "ferry --version" name the binary's
// version and Go's; requests say they come from ferry unless -H says
// otherwise.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := ferry(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "ferry ") || !strings.Contains(stdout, runtime.Version()) {
			t.Errorf("ferry %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	if code, _, _ := ferry(t, "version", "extra"); code != exitUsage {
		t.Errorf("ferry version extra: exit %d, want %d", code, exitUsage)
	}

	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.bin"), randomData(3, 3*testBS), 0o644)
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var agents []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	defer func() { ts.Close(); srv.Close() }()
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "ferry/"},
		{[]string{"-H", "User-Agent: ci-job/7"}, "ci-job/7"},
	} {
		mu.Lock()
		agents = nil
		mu.Unlock()
		args := append([]string{"get", ts.URL + "/sse/f.bin", "-o", filepath.Join(dir, "f.bin"), "--force"}, c.args...)
		if code, _, stderr := ferry(t, args...); code != 0 {
			t.Fatalf("ferry %v: exit %d\n%s", args, code, stderr)
		}
		mu.Lock()
		for _, a := range agents {
			if !strings.HasPrefix(a, c.want) {
				t.Errorf("ferry %v sent User-Agent %q, want %s…", args, a, c.want)
			}
		}
		if len(agents) == 0 {
			t.Errorf("ferry %v: no request reached the server", args)
		}
		mu.Unlock()
	}
}
