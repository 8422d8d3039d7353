// Package servertest provides a fault-injecting TCP proxy for tests of
// Ferry's clients and server: it cuts, stalls, throttles and corrupts the
// bytes a server sends, at positions a test chooses.
package servertest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to one connection's server-to-client bytes.
// Positions count bytes of that connection's response, from 0.
type Fault struct {
	// CutAt closes the connection after this many bytes (0: never).
	CutAt int64
	// StallAt stops forwarding after this many bytes and holds the
	// connection open until the client gives up or the proxy closes (0: never).
	StallAt int64
	// FlipAt inverts the low bit of the byte at this position (0: never;
	// use FlipAt > 0, the first byte of a response is a status line anyway).
	FlipAt int64
	// BytesPerSecond throttles the connection (0: unlimited).
	BytesPerSecond int64
}

// Proxy forwards TCP connections on 127.0.0.1 to a target address, applying
// the Fault its Plan returns for each new connection.
type Proxy struct {
	// Addr is the proxy's listening address, host:port.
	Addr string

	plan   atomic.Pointer[func(n int) Fault]
	target string
	ln     net.Listener
	conns  atomic.Int64
	down   atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
}

// NewProxy starts a proxy to target. plan returns the fault for the n-th
// connection (0-based); nil means none. Close stops the proxy and every
// connection.
func NewProxy(target string, plan func(n int) Fault) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, done: make(chan struct{}), open: make(map[net.Conn]struct{})}
	p.SetPlan(plan)
	p.wg.Go(p.accept)
	return p, nil
}

// SetPlan replaces the plan for the connections accepted from now on.
func (p *Proxy) SetPlan(plan func(n int) Fault) { p.plan.Store(&plan) }

// Conns returns how many connections the proxy has accepted.
func (p *Proxy) Conns() int { return int(p.conns.Load()) }

// BytesDown returns how many bytes went from the server to clients.
func (p *Proxy) BytesDown() int64 { return p.down.Load() }

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines to exit.
func (p *Proxy) Close() error {
	close(p.done)
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		select {
		case <-p.done:
			return false
		default:
		}
		p.open[c] = struct{}{}
	} else {
		delete(p.open, c)
	}
	return true
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		n := int(p.conns.Add(1) - 1)
		var f Fault
		if plan := *p.plan.Load(); plan != nil {
			f = plan(n)
		}
		p.wg.Go(func() { p.serve(client, f) })
	}
}

func (p *Proxy) serve(client net.Conn, f Fault) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) || !p.track(server, true) {
		client.Close()
		server.Close()
		return
	}
	defer func() {
		client.Close()
		server.Close()
		p.track(client, false)
		p.track(server, false)
	}()
	up := make(chan struct{})
	go func() { // client → server; exits when either side closes
		io.Copy(server, client)
		if tc, ok := server.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(up)
	}()
	if p.forward(client, server, f) {
		// Stalled: hold the connection silently until the client leaves
		// (its side of the copy above ends) or the proxy closes.
		select {
		case <-up:
		case <-p.done:
		}
	}
	client.Close()
	server.Close()
	<-up
}

// forward copies server → client applying f. It reports whether it stopped
// at f.StallAt.
func (p *Proxy) forward(client, server net.Conn, f Fault) (stalled bool) {
	buf := make([]byte, 32<<10)
	var pos int64
	start := time.Now()
	for {
		limit := int64(len(buf))
		for _, at := range []int64{f.CutAt, f.StallAt} {
			if at > 0 && at > pos {
				limit = min(limit, at-pos)
			}
		}
		if f.BytesPerSecond > 0 {
			limit = min(limit, max(1, f.BytesPerSecond/50))
		}
		n, err := server.Read(buf[:limit])
		if n > 0 {
			if f.FlipAt > 0 && f.FlipAt >= pos && f.FlipAt < pos+int64(n) {
				buf[f.FlipAt-pos] ^= 1
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return false
			}
			pos += int64(n)
			p.down.Add(int64(n))
		}
		if err != nil || f.CutAt > 0 && pos >= f.CutAt {
			return false
		}
		if f.StallAt > 0 && pos >= f.StallAt {
			return true
		}
		if f.BytesPerSecond > 0 {
			want := time.Duration(float64(pos) / float64(f.BytesPerSecond) * float64(time.Second))
			if d := want - time.Since(start); d > 0 {
				select {
				case <-time.After(d):
				case <-p.done:
					return false
				}
			}
		}
	}
}
