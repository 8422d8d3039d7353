// Command bench measures the browser client end to end: plain headless
// Chromium (not playwright, which slows streams several times) downloads a
// generated file from `ferry serve` with ferry.js, which streams, decodes,
// verifies and writes it to OPFS, and the page reports MB/s of file bytes.
//
//	go run ./server/web/bench [-size 1GiB] [-runs 3] [-compress=true] [-sha256=false]
//
// It builds the ferry binary, generates the file with `ferry gen` (seed 1),
// starts `ferry serve` on 127.0.0.1, warms the server's manifest cache and
// the page cache, then runs Chromium on /bench.html once per run, each with
// a fresh profile, and prints one line per run and the median. It also
// times a plain HTTP GET of /files/ in Go, for scale.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	size := flag.String("size", "1GiB", "size of the generated file (ferry gen --size)")
	runs := flag.Int("runs", 3, "number of browser downloads")
	compress := flag.Bool("compress", true, "let the page ask for gzip blocks (random data does not shrink)")
	sha := flag.Bool("sha256", false, "also compute SHA-256 in the worker while downloading")
	chromium := flag.String("chromium", "/usr/bin/chromium", "the browser")
	dir := flag.String("dir", "", "folder for the binary and the file (default: a temporary folder, removed after)")
	flag.Parse()
	if err := run(*size, *runs, *compress, *sha, *chromium, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type report struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mbps"`
	Storage string  `json:"storage"`
	SHA256  string  `json:"sha256"`
	Local   string  `json:"sha256Local"`
	Error   string  `json:"error"`
}

func run(size string, runs int, compress, sha bool, chromium, dir string) error {
	if _, err := os.Stat(chromium); err != nil {
		return fmt.Errorf("no browser at %s (apt-get install chromium): %w", chromium, err)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "ferry-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx := context.Background()
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ferry-dev/ferry/cmd/ferry").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	name := "bench-" + size + ".bin"
	file := filepath.Join(root, name)
	if _, err := os.Stat(file); err != nil {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, bin, "gen", "--size", size, "-o", file).CombinedOutput(); err != nil {
			return fmt.Errorf("ferry gen: %v\n%s", err, out)
		}
	}

	base, stop, err := serve(ctx, bin, root)
	if err != nil {
		return err
	}
	defer stop()

	// Warm up: the manifest hashes the file once (later streams take the
	// end event's digests from the cache) and leaves it in the page cache.
	if _, err := getAll(base + "/manifest/" + url.PathEscape(name)); err != nil {
		return err
	}
	start := time.Now()
	n, err := getAll(base + "/files/" + url.PathEscape(name))
	if err != nil {
		return err
	}
	plain := float64(n) / 1e6 / time.Since(start).Seconds()

	fmt.Printf("ferry browser benchmark: %s, 256 KiB blocks, compress=%v sha256=%v, %s\n", size, compress, sha, chromiumVersion(chromium))
	fmt.Printf("plain HTTP GET /files/ in Go: %.0f MB/s\n", plain)
	var rates []float64
	for i := range runs {
		q := url.Values{"path": {name}}
		if !compress {
			q.Set("compress", "0")
		}
		if sha {
			q.Set("sha256", "1")
		}
		r, err := browse(ctx, chromium, base+"/bench.html?"+q.Encode())
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		if r.Error != "" {
			return fmt.Errorf("run %d: the page failed: %s", i+1, r.Error)
		}
		extra := ""
		if r.Local != "" {
			extra = " (SHA-256 computed in the worker matches)"
		}
		fmt.Printf("run %d: %d bytes in %.2f s = %.1f MB/s to %s%s\n", i+1, r.Bytes, r.Seconds, r.MBps, r.Storage, extra)
		rates = append(rates, r.MBps)
	}
	slices.Sort(rates)
	fmt.Printf("median: %.1f MB/s end to end (stream, decode, verify, write to OPFS)\n", rates[len(rates)/2])
	return nil
}

var listening = regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)/`)

// serve starts `ferry serve` on a free loopback port and returns its URL.
func serve(ctx context.Context, bin, root string) (string, func(), error) {
	cmd := exec.CommandContext(ctx, bin, "serve", "--root", root, "--addr", "127.0.0.1:0", "--log", "none", "--no-cache")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, out) // exits when the server does
			return m[1], stop, nil
		}
	}
	stop()
	return "", nil, errors.New("ferry serve printed no address")
}

func getAll(u string) (int64, error) {
	res, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, res.Status)
	}
	return io.Copy(io.Discard, res.Body)
}

// browse opens u in headless Chromium with a fresh profile and returns the
// report the page logs to the console as "FERRYBENCH {json}".
func browse(ctx context.Context, chromium, u string) (*report, error) {
	profile, err := os.MkdirTemp("", "ferry-bench-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--enable-logging=stderr", "--v=0", u)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // chromium and its helpers, killed together
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	logs, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	sc := bufio.NewScanner(logs)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "FERRYBENCH {")
		if i < 0 {
			continue
		}
		js := line[i+len("FERRYBENCH "):]
		js = js[:strings.LastIndex(js, "}")+1] // Chromium appends `", source: …`
		var r report
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return nil, fmt.Errorf("bad report %q: %w", js, err)
		}
		return &r, nil
	}
	return nil, fmt.Errorf("chromium exited without a report (%v)", ctx.Err())
}

func chromiumVersion(chromium string) string {
	out, err := exec.Command(chromium, "--version").Output()
	if err != nil {
		return "chromium"
	}
	return strings.TrimSpace(string(out))
}
