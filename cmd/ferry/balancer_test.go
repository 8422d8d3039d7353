package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/realparts"
	"github.com/ferry-dev/ferry/server/servertest"
)

// The shipped deployment files, which these tests run with only their
// addresses, ports and paths replaced.
const (
	deployNginx   = "../../docs/deploy/nginx.conf"
	deployHAProxy = "../../docs/deploy/haproxy.cfg"
	deployUnit    = "../../docs/deploy/ferry.service"
)

// replica is a `ferry serve` process behind a balancer.
type replica struct {
	name string
	cmd  *exec.Cmd
	addr string        // host:port it listens on
	logs *lockedLog    // its JSON log on stderr
	done chan struct{} // closed when the process has exited
}

// lockedLog is a process's log that the test reads while it runs.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startReplicas starts n ferry serve processes over the same root, each
// with its own manifest cache, as the replicas of a deployment are, and
// waits until they listen.
func startReplicas(t *testing.T, n int, root, blockSize string) []*replica {
	t.Helper()
	var rs []*replica
	for i := range n {
		r := &replica{name: fmt.Sprintf("replica%d", i+1), logs: new(lockedLog), done: make(chan struct{})}
		r.cmd = exec.Command(ferryBin, "serve", "--root", root, "--addr", "127.0.0.1:0", "--block-size", blockSize,
			"--retry", "50ms", "--log", "json", "--cache-dir", t.TempDir())
		stdout, err := r.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		r.cmd.Stderr = r.logs
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, rerr := bufio.NewReader(stdout).ReadString('\n')
		go io.Copy(io.Discard, stdout) // exits when the process ends and Wait closes the pipe
		go func() { r.cmd.Wait(); close(r.done) }()
		t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
		m := listening.FindStringSubmatch(line)
		if rerr != nil || m == nil {
			t.Fatalf("%s did not start (%q, %v): %s", r.name, line, rerr, r.logs)
		}
		r.addr = m[1]
		rs = append(rs, r)
	}
	return rs
}

// kill sends SIGKILL, a crash, and waits for the process to be gone.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", r.name)
	}
}

// written returns the bytes the process has written so far, sockets
// included (wchar in /proc/PID/io): the replica that serves a stream is
// the one whose count grows by the stream's bytes.
func (r *replica) written(t *testing.T) int64 {
	t.Helper()
	n, err := realparts.Written(r.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("%s: %v (the kill test finds the streaming replica in /proc)", r.name, err)
	}
	return n
}

// streamLog is the access log line ferry serve writes when a stream ends.
type streamLog struct {
	Msg     string `json:"msg"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Bytes   int64  `json:"bytes"`
	Outcome string `json:"outcome"`
}

// streams returns the streams r has ended so far.
func (r *replica) streams() []streamLog {
	var out []streamLog
	for line := range strings.Lines(r.logs.String()) {
		var l streamLog
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "stream" {
			out = append(out, l)
		}
	}
	return out
}

func addrs(rs []*replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.addr)
	}
	return out
}

// balancer is nginx or HAProxy in front of the replicas, started from the
// shipped configuration.
type balancer struct {
	http  string // host:port of plain HTTP
	https string // host:port of HTTP/2 over TLS ("" for none)
	ca    string // the certificate file to trust for https
	proc  *realparts.Proc
}

// replicaAddrs replaces the shipped files' three example replicas.
func replicaAddrs(upstreams []string) []string {
	var oldnew []string
	for i, a := range upstreams {
		oldnew = append(oldnew, fmt.Sprintf("replica%d.internal:8080", i+1), a)
	}
	return oldnew
}

func startNginx(t *testing.T, upstreams []string) *balancer {
	t.Helper()
	b := &balancer{http: realparts.FreeAddr(t), https: realparts.FreeAddr(t)}
	var key string
	b.ca, key = realparts.SelfSignedCert(t, t.TempDir())
	site := realparts.Load(t, deployNginx, append([]string{
		"listen 80;", "listen " + b.http + ";",
		"listen 443 ssl http2;", "listen " + b.https + " ssl http2;",
		"/etc/ssl/ferry/fullchain.pem", b.ca,
		"/etc/ssl/ferry/privkey.pem", key,
	}, replicaAddrs(upstreams)...)...)
	b.proc = realparts.StartNginx(t, realparts.NginxHTTP(site))
	return b
}

func startHAProxy(t *testing.T, upstreams []string) *balancer {
	t.Helper()
	b := &balancer{http: realparts.FreeAddr(t)}
	cfg := realparts.Load(t, deployHAProxy, append([]string{"bind :80", "bind " + b.http}, replicaAddrs(upstreams)...)...)
	b.proc = realparts.StartHAProxy(t, realparts.HAProxyGlobal(cfg))
	return b
}

// writeRandomFile writes size random bytes (ChaCha8, seed) to path and
// returns their SHA-256.
func writeRandomFile(t *testing.T, path string, seed byte, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{seed})
	if _, err := io.CopyN(io.MultiWriter(f, h), src, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// streaming returns the live replica that serves ferry get's stream: the
// one replica that writes more than a MiB while the download moves on by
// one step of its progress (5 %, megabytes of blocks).
func streaming(t *testing.T, get *getProc, live []*replica) *replica {
	t.Helper()
	before := make([]int64, len(live))
	for i, r := range live {
		before[i] = r.written(t)
	}
	from := get.pct.Load()
	get.waitUntil(t, fmt.Sprintf("progress past %d%%", from), func() bool { return get.pct.Load() > from })
	var who *replica
	var deltas []string
	for i, r := range live {
		d := r.written(t) - before[i]
		deltas = append(deltas, fmt.Sprintf("%s %d", r.name, d))
		if d < 1<<20 {
			continue
		}
		if who != nil {
			t.Fatalf("two replicas wrote megabytes during one step of one stream: %v", deltas)
		}
		who = r
	}
	if who == nil {
		t.Fatalf("no replica wrote a MiB while the download went past %d%%: %v", from, deltas)
	}
	return who
}

// probe sends n requests for /healthz through the balancer, one after the
// other, and fails t unless a live replica answers each: dealt round robin
// over n replicas, one of them at least goes to each dead one. It returns
// how long they took.
func probe(t *testing.T, lb *balancer, n int) time.Duration {
	t.Helper()
	start := time.Now()
	for i := range n {
		resp, err := http.Get("http://" + lb.http + "/healthz")
		if err != nil {
			t.Fatalf("request %d of %d after a kill: %v\n%s", i+1, n, err, lb.proc.Output())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of %d after a kill: %s\n%s", i+1, n, resp.Status, lb.proc.Output())
		}
	}
	return time.Since(start).Round(time.Millisecond)
}

// TestBalancerKillsReplicasMidStream runs three ferry serve replicas over
// one shared folder behind a real balancer, started from the shipped
// configuration (docs/deploy), and downloads a 256 MiB file through it with
// ferry get. Twice, once the download has made progress, the replica that
// serves the stream is killed (SIGKILL): ferry get reconnects through the
// balancer with Last-Event-ID and the version pin, the balancer sends it to
// a live replica (nginx: proxy_next_upstream; HAProxy: retries with
// redispatch until its health check marks the dead one down), and the file
// arrives byte-identical, with at most one block per kill fetched twice.
// After each kill, as many requests as there are replicas go through the
// balancer one after the other: round robin deals one at least to each dead
// replica, and a live one must answer it.
//
// Nothing is throttled: the whole file crosses the loopback in a few
// seconds, but each step below follows one of ferry get's progress lines
// (one per 5 %), so the kills land at about 10 % and 20 %.
func TestBalancerKillsReplicasMidStream(t *testing.T) {
	const (
		size  = 256 << 20
		bs    = 64 << 10
		kills = 2
	)
	root := t.TempDir()
	var want string // the file's sha256, once the first balancer found is there
	for _, tt := range []struct {
		name  string
		need  func(testing.TB) string
		start func(*testing.T, []string) *balancer
	}{
		{"HAProxy", realparts.HAProxy, startHAProxy},
		{"nginx", realparts.Nginx, startNginx},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.need(t)
			if want == "" {
				want = writeRandomFile(t, filepath.Join(root, "f.bin"), 1, size)
			}
			replicas := startReplicas(t, 3, root, "64KiB")
			lb := tt.start(t, addrs(replicas))
			out := filepath.Join(t.TempDir(), "f.bin")
			start := time.Now()
			get := startGetLines(t, "http://"+lb.http+"/sse/f.bin", "-o", out,
				"--json", "--retries", "30", "--idle-timeout", "5s")
			live := slices.Clone(replicas)
			var report []string
			var probed []time.Duration
			for i := range int64(kills) {
				// Once the client has reconnected after the last kill (or,
				// the first time, connected) and made progress on the new
				// stream: not while it drains what the dead replica sent.
				get.waitUntil(t, fmt.Sprint("reconnect ", i), func() bool { return get.reconnects.Load() >= i })
				from := max(get.pct.Load(), 0)
				get.waitUntil(t, fmt.Sprintf("progress past %d%%", from), func() bool { return get.pct.Load() > from })
				victim := streaming(t, get, live)
				at := get.pct.Load()
				if at >= 100 {
					t.Fatalf("the download was complete before kill %d", i+1)
				}
				victim.kill(t)
				live = slices.DeleteFunc(live, func(r *replica) bool { return r == victim })
				probed = append(probed, probe(t, lb, len(replicas)))
				report = append(report, fmt.Sprintf("%s at %d%%", victim.name, at))
			}
			if code := get.wait(t); code != 0 {
				t.Fatalf("ferry get exit %d:\n%s\n%s:\n%s", code, get.stderr(), tt.name, lb.proc.Output())
			}
			took := time.Since(start)
			s := parseSummary(t, get.stdout.String())
			if got := fileSHA(t, out); got != want || s.SHA256 != want {
				t.Fatalf("%s has sha256 %s (summary %s), want %s", out, got, s.SHA256, want)
			}
			if s.Reconnects < kills {
				t.Errorf("%d reconnects for %d kills:\n%s", s.Reconnects, kills, get.stderr())
			}
			if limit := int64(size + kills*bs); s.BytesFetched > limit {
				t.Errorf("fetched %d bytes, want at most %d: the size plus one block per kill", s.BytesFetched, limit)
			}
			// The download ended on a replica that was not killed, in a
			// stream that continued one of the dead replicas' streams.
			var finished []string
			for _, r := range live {
				for _, l := range r.streams() {
					if l.Outcome == "complete" && l.End == size {
						finished = append(finished, fmt.Sprintf("%s from offset %d", r.name, l.Start))
						if l.Start == 0 {
							t.Errorf("%s streamed the whole file: no stream was continued after the kills", r.name)
						}
					}
				}
			}
			if len(finished) != 1 {
				t.Errorf("want one complete stream on a live replica, got %v", finished)
			}
			t.Logf("%s: %d MiB in %v; killed %v; finished on %v; %d reconnects; %d bytes fetched for %d (%d more); %d requests after each kill took %v",
				tt.name, size>>20, took.Round(time.Millisecond), report, finished, s.Reconnects,
				s.BytesFetched, size, s.BytesFetched-size, len(replicas), probed)
		})
	}
}

// waitCond waits up to 10 s for cond, checking it every 10 ms.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %s after 10s", what)
		}
	}
}

// firstBlockEvent reads a stream from url until the end of its first block
// event, and returns that event, or an error when timeout passes first.
func firstBlockEvent(client *http.Client, url string, timeout time.Duration) (ev string, proto string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		return "", resp.Proto, fmt.Errorf("GET %s: %s, %s", url, resp.Status, ct)
	}
	br := bufio.NewReader(resp.Body)
	var event strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", resp.Proto, fmt.Errorf("GET %s: no whole block event: %w", url, err)
		}
		if line != "\n" {
			event.WriteString(line)
			continue
		}
		if strings.Contains(event.String(), "event: block\n") {
			return event.String(), resp.Proto, nil
		}
		event.Reset()
	}
}

// firstEventEnd returns how many bytes of the response to a raw HTTP/1.0
// GET of path, the request nginx sends upstream by default, come before
// the end of its first block event, headers included.
func firstEventEnd(t *testing.T, addr, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: ferry\r\nConnection: close\r\n\r\n", path)
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if i := bytes.Index(got, []byte("event: block\n")); i >= 0 {
			if j := bytes.Index(got[i:], []byte("\n\n")); j >= 0 {
				return i + j + 2
			}
		}
		if err != nil {
			t.Fatalf("raw GET %s: %v after %q", path, err, got)
		}
	}
}

// TestNginxDefaultBufferingStillStreams puts nginx with its defaults
// (proxy_buffering on, HTTP/1.0 upstream: a configuration written without
// docs/deploy) in front of a replica, through a proxy that forwards the
// replica's response until a few hundred bytes into its second block event
// and then holds it open: the server's stream cannot end. The first block
// event still reaches the client, since Ferry's X-Accel-Buffering: no turns
// nginx's buffering off for the stream. The control shows that this is what
// does it: with nginx told to ignore that header, the same event, a few
// kilobytes, stays in nginx's buffer.
func TestNginxDefaultBufferingStillStreams(t *testing.T) {
	realparts.Nginx(t)
	root := t.TempDir()
	// 16 MiB of 1 KiB blocks: some 22 MB of events, far more than the
	// sockets between the replica and the proxy hold.
	writeRandomFile(t, filepath.Join(root, "f.bin"), 2, 16<<20)
	r := startReplicas(t, 1, root, "1KiB")[0]
	stallAt := int64(firstEventEnd(t, r.addr, "/sse/f.bin") + 512)
	// The measuring stream ends (logs) once the replica finds its client gone.
	waitCond(t, "the measuring stream's log line", func() bool { return len(r.streams()) == 1 })
	proxy, err := servertest.NewProxy(r.addr, func(int) servertest.Fault { return servertest.Fault{StallAt: stallAt} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	for _, tt := range []struct {
		name    string
		extra   string
		arrives bool
	}{
		{"honoured", "", true},
		{"ignored", "proxy_ignore_headers X-Accel-Buffering;", false},
	} {
		t.Run("X-Accel-Buffering "+tt.name, func(t *testing.T) {
			addr := realparts.FreeAddr(t)
			site := fmt.Sprintf("upstream ferry {\n    server %s;\n}\nserver {\n    listen %s;\n    location / {\n        proxy_pass http://ferry;\n        %s\n    }\n}\n",
				proxy.Addr, addr, tt.extra)
			ng := realparts.StartNginx(t, realparts.NginxHTTP(site))
			ended := len(r.streams())
			wait := 10 * time.Second
			if !tt.arrives {
				wait = time.Second // it never comes while the stream is held; a second shows it
			}
			ev, _, err := firstBlockEvent(http.DefaultClient, "http://"+addr+"/sse/f.bin", wait)
			switch {
			case tt.arrives && err != nil:
				t.Fatalf("through nginx with proxy_buffering on: %v\nnginx:\n%s", err, ng.Output())
			case tt.arrives && !strings.HasPrefix(ev, "id: 0\n"):
				t.Errorf("the first block event is %.80q…, want id 0", ev)
			case !tt.arrives && err == nil:
				t.Fatal("with X-Accel-Buffering ignored, the first event still came through: this test would pass without the header")
			}
			if n := len(r.streams()); tt.arrives && n != ended {
				t.Errorf("the replica ended a stream before the client had read its first event: %v", r.streams())
			}
		})
	}
}

// TestNginxHTTP2ToBrowsers: the shipped nginx.conf serves streams over
// HTTP/2 with TLS (what browsers get), and ferry get downloads through it.
func TestNginxHTTP2ToBrowsers(t *testing.T) {
	realparts.Nginx(t)
	root := t.TempDir()
	want := writeRandomFile(t, filepath.Join(root, "f.bin"), 3, 8<<20)
	replicas := startReplicas(t, 3, root, "64KiB")
	lb := startNginx(t, addrs(replicas))
	ca, err := os.ReadFile(lb.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	url := "https://" + lb.https + "/sse/f.bin"
	ev, proto, err := firstBlockEvent(client, url, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\nnginx:\n%s", err, lb.proc.Output())
	}
	if proto != "HTTP/2.0" || !strings.HasPrefix(ev, "id: 0\n") {
		t.Errorf("GET %s: %s, first block event %.40q…; want HTTP/2.0 and id 0", url, proto, ev)
	}
	out := filepath.Join(t.TempDir(), "f.bin")
	code, stdout, stderr := ferry(t, "get", url, "-o", out, "--cacert", lb.ca, "--json", "--progress", "none")
	if code != 0 {
		t.Fatalf("ferry get %s: exit %d\n%s", url, code, stderr)
	}
	if s := parseSummary(t, stdout); s.SHA256 != want || fileSHA(t, out) != want {
		t.Errorf("ferry get over HTTP/2: sha256 %s, want %s", s.SHA256, want)
	}
}

// unitFile returns the settings of a systemd unit file, by key, in order,
// with continued lines (a trailing backslash) joined.
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	settings := map[string][]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		settings[k] = append(settings[k], strings.TrimSpace(v))
	}
	return settings
}

// TestSystemdUnit runs the ExecStart line of docs/deploy/ferry.service,
// with only its paths and address replaced, and stops it as systemd does:
// KillSignal, then SIGKILL after TimeoutStopSec. The unit's stop timeout
// must leave ferry serve its whole --shutdown-timeout, and ferry serve must
// exit 0 (Restart=on-failure restarts it otherwise) well within it, with a
// stream open.
func TestSystemdUnit(t *testing.T) {
	unit := unitFile(t, deployUnit)
	one := func(key string) string {
		if v := unit[key]; len(v) == 1 {
			return v[0]
		}
		t.Fatalf("%s: want one %s=, got %q", deployUnit, key, unit[key])
		return ""
	}
	for key, want := range map[string]string{
		"KillSignal": "SIGTERM", "Restart": "on-failure", "User": "ferry", "ProtectSystem": "strict", "CacheDirectory": "ferry",
	} {
		if got := one(key); got != want {
			t.Errorf("%s: %s=%s, want %s", deployUnit, key, got, want)
		}
	}
	root, cache := t.TempDir(), t.TempDir()
	// More than socket buffers hold: the stream is blocked writing when the
	// signal comes, the case where the drain must close the connection.
	writeRandomFile(t, filepath.Join(root, "f.bin"), 4, 64<<20)
	line, err := realparts.Fill(one("ExecStart"),
		"/usr/local/bin/ferry", ferryBin, "/srv/ferry/files", root, "${FERRY_ADDR}", "127.0.0.1:0",
		"/var/cache/ferry/manifests", cache)
	if err != nil {
		t.Fatalf("%s: ExecStart: %v", deployUnit, err)
	}
	if !strings.HasPrefix(one("ReadOnlyPaths"), "/srv/ferry") {
		t.Errorf("%s: ReadOnlyPaths=%s does not hold --root /srv/ferry/files", deployUnit, one("ReadOnlyPaths"))
	}
	argv := strings.Fields(line)
	f := newServeFlags(io.Discard)
	if argv[0] != ferryBin || argv[1] != "serve" || f.fs.Parse(argv[2:]) != nil || f.fs.NArg() != 0 {
		t.Fatalf("%s: ExecStart is not a ferry serve command line: %q", deployUnit, argv)
	}
	stopTimeout, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("%s: TimeoutStopSec: %v", deployUnit, err)
	}
	// ferry serve waits --shutdown-timeout for streams, then 1 s for their
	// handlers to log.
	if limit := *f.grace + time.Second; stopTimeout <= limit {
		t.Errorf("%s: TimeoutStopSec=%v, want above --shutdown-timeout + 1s = %v", deployUnit, stopTimeout, limit)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := new(lockedLog)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	first, _ := bufio.NewReader(stdout).ReadString('\n')
	go io.Copy(io.Discard, stdout) // exits when the process ends
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	m := listening.FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("ExecStart did not start a server (%q): %s", first, logs)
	}
	// A client that reads slowly keeps a stream open across the signal.
	resp, err := http.Get("http://" + m[1] + "/sse/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Fatalf("ferry serve still running TimeoutStopSec=%v after SIGTERM: systemd would SIGKILL it", stopTimeout)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("ferry serve exited %d after SIGTERM: Restart=on-failure would restart it\n%s", code, logs)
	}
	if !strings.Contains(logs.String(), `"outcome":"shutdown"`) {
		t.Errorf("no stream ended with outcome shutdown:\n%s", logs)
	}
	t.Logf("stopped in %v with a stream open (TimeoutStopSec=%v, --shutdown-timeout %v)",
		time.Since(start).Round(time.Millisecond), stopTimeout, *f.grace)
}
