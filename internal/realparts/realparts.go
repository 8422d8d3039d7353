// Package realparts finds and starts real third-party servers for tests:
// nginx and HAProxy, each in a temporary folder of its own, listening on
// 127.0.0.1 only, stopped when the test ends.
//
// A test that needs one and does not find it is skipped, with the package
// to install; under CI=true it fails instead, since CI installs them
// (.ci/run).
package realparts

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a running nginx or HAProxy.
type Proc struct {
	// Dir is its temporary folder: its configuration, pid file and
	// temporary files.
	Dir string
	// Addrs are the 127.0.0.1:PORT addresses it listens on, from its
	// configuration.
	Addrs []string

	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, once done is closed
}

// Output returns what the process wrote to stdout and stderr so far: its
// error log and, with the configurations of NginxHTTP and HAProxyGlobal,
// its access log.
func (p *Proc) Output() string { return p.out.String() }

// NginxPath returns the path of the nginx binary: on $PATH, or in
// /usr/sbin, where Debian installs it and where $PATH may not reach.
func NginxPath() (string, error) { return lookPath("nginx") }

// HAProxyPath returns the path of the haproxy binary, like NginxPath.
func HAProxyPath() (string, error) { return lookPath("haproxy") }

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("realparts: %s: %w", name, exec.ErrNotFound)
}

// Nginx returns the nginx binary, or skips t when there is none (fails it
// under CI=true). Call it before a costly setup.
func Nginx(t testing.TB) string {
	t.Helper()
	return need(t, NginxPath, "nginx not installed: apt-get install nginx-light")
}

// HAProxy returns the haproxy binary, or skips t when there is none (fails
// it under CI=true).
func HAProxy(t testing.TB) string {
	t.Helper()
	return need(t, HAProxyPath, "haproxy not installed: apt-get install haproxy")
}

func need(t testing.TB, look func() (string, error), msg string) string {
	t.Helper()
	p, err := look()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (.ci/run installs it)")
	}
	t.Skip(msg)
	return ""
}

// StartNginx runs nginx with conf, a whole nginx.conf (NginxHTTP makes one
// around a site file), in a temporary prefix: relative paths in conf are
// relative to it. The daemon, pid and error_log settings come from the
// command line, so conf must not set them. StartNginx returns once every
// address conf listens on accepts connections; nginx stops when t ends.
func StartNginx(t testing.TB, conf string) *Proc {
	t.Helper()
	bin := Nginx(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	global := fmt.Sprintf("daemon off; pid %s; error_log stderr;", filepath.Join(dir, "nginx.pid"))
	if os.Geteuid() == 0 {
		// Under root, workers would run as nobody, who may not enter
		// the temporary folder (mode 0700) to keep a buffered response.
		global += " user root;"
	}
	return start(t, "nginx", dir, path, conf, bin, "-p", dir+"/", "-c", path, "-g", global)
}

// StartHAProxy runs haproxy with cfg (HAProxyGlobal adds a global section
// to the sections of a shipped file) in the foreground, from a temporary
// folder. It returns once every address cfg binds accepts connections;
// haproxy stops when t ends.
func StartHAProxy(t testing.TB, cfg string) *Proc {
	t.Helper()
	bin := HAProxy(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	return start(t, "haproxy", dir, path, cfg, bin, "-f", path, "-db")
}

// start writes conf to path and runs argv in dir until its listening
// addresses accept connections.
func start(t testing.TB, name, dir, path, conf string, argv ...string) *Proc {
	t.Helper()
	addrs, err := listenAddrs(conf)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Dir: dir, Addrs: addrs, name: name, out: new(lockedBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }() // exits with the process
	t.Cleanup(func() { p.stop(t) })
	if err := p.waitListening(10 * time.Second); err != nil {
		t.Fatalf("%s: %v\nconfiguration %s:\n%s\noutput:\n%s", name, err, path, conf, p.Output())
	}
	return p
}

// waitListening waits until every address of p accepts a connection, or p
// exits, or the timeout passes.
func (p *Proc) waitListening(timeout time.Duration) error {
	deadline := time.After(timeout)
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for _, addr := range p.Addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return fmt.Errorf("exited (%v) before listening on %s", p.err, addr)
			case <-deadline:
				return fmt.Errorf("not listening on %s after %v: %w", addr, timeout, err)
			case <-retry.C:
			}
		}
	}
	return nil
}

// stop ends p with SIGTERM (a fast shutdown for both nginx and HAProxy,
// which end open streams at once), then SIGKILL after 10 s.
func (p *Proc) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s still running 10s after SIGTERM; killing it", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
	if ee := (*exec.ExitError)(nil); errors.As(p.err, &ee) && !ee.Exited() {
		return // ended by the signal, as asked
	} else if p.err != nil {
		t.Logf("%s exited with %v:\n%s", p.name, p.err, p.Output())
	}
}

// lockedBuffer is an io.Writer that may be read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
