package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server is the "ferry serve" child.
type Server struct {
	cmd     *exec.Cmd
	Addr    string       // host:port it listens on
	Wire    atomic.Int64 // response body bytes it logged, /healthz excepted
	healthz chan struct{}
	exited  chan struct{}

	mu   sync.Mutex
	tail []string // its last lines of stderr that are not access logs
}

// StartServer starts "exe serve" on a free loopback port, with a JSON
// access log and the given cache folder, serving source (--root DIR or
// --origin URL), and returns once it listens.
func StartServer(ctx context.Context, exe, cacheDir string, blockSize int, source ...string) (*Server, error) {
	return StartServerArgv(ctx, append([]string{exe, "serve", "--addr", "127.0.0.1:0", "--block-size", strconv.Itoa(blockSize),
		"--log", "json", "--cache-dir", cacheDir}, source...))
}

// StartServerArgv starts a "ferry serve" command line of argv (with --log
// json, for Sync and Wire; run in a network namespace through "ip netns
// exec", say) and returns once it listens.
func StartServerArgv(ctx context.Context, argv []string) (*Server, error) {
	s := &Server{healthz: make(chan struct{}, 1), exited: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go s.readLog(stderr) // exits when the server closes stderr
	addrs := make(chan string, 1)
	go func() { // exits when the server closes stdout
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := serveAddr.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrs <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { s.cmd.Wait(); close(s.exited) }() // exits with the server
	select {
	case s.Addr = <-addrs:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("ferry serve exited: %s", s.LastLines())
	case <-time.After(30 * time.Second):
		s.Stop()
		return nil, errors.New("ferry serve printed no address within 30s")
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

var serveAddr = regexp.MustCompile(` at http://([0-9.]+:\d+)/`) // "serving SOURCE at URL": SOURCE may be a URL too

func (s *Server) Base() string { return "http://" + s.Addr }

// readLog adds up the bytes of the server's access log lines and signals
// each /healthz request.
func (s *Server) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg   string `json:"msg"`
			Path  string `json:"path"`
			Bytes int64  `json:"bytes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Msg == "" {
			s.mu.Lock()
			s.tail = append(s.tail, sc.Text())
			if len(s.tail) > 5 {
				s.tail = s.tail[1:]
			}
			s.mu.Unlock()
			continue
		}
		switch {
		case l.Msg != "request":
		case l.Path == "/healthz":
			select {
			case s.healthz <- struct{}{}:
			default:
			}
		default:
			s.Wire.Add(l.Bytes)
		}
	}
}

func (s *Server) LastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// sync returns once the server has logged every request answered so far:
// it logs a /healthz request made after them.
func (s *Server) Sync(ctx context.Context) error {
	select {
	case <-s.healthz:
	default:
	}
	if err := GetDiscard(ctx, s.Base()+"/healthz"); err != nil {
		return err
	}
	select {
	case <-s.healthz:
		return nil
	case <-s.exited:
		return fmt.Errorf("ferry serve exited: %s", s.LastLines())
	case <-time.After(10 * time.Second):
		return errors.New("ferry serve did not log a request within 10s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sample returns the server's CPU seconds and peak RSS so far, or -1 where
// /proc cannot tell.
func (s *Server) Sample() (cpu float64, hwm int64) {
	pid := s.cmd.Process.Pid
	cpu, hwm = -1, -1
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the parenthesised command: utime and stime are the
		// 12th and 13th, in clock ticks of 1/100 s on Linux.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 12 {
				ut, err1 := strconv.ParseInt(f[11], 10, 64)
				st, err2 := strconv.ParseInt(f[12], 10, 64)
				if err1 == nil && err2 == nil {
					cpu = float64(ut+st) / 100
				}
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					hwm = kb << 10
				}
			}
		}
	}
	return cpu, hwm
}

// stop ends the server with SIGTERM, or kills it after a grace period.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}
