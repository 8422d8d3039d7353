package link

import (
	"io"
	"net"
	"sync"
	"time"
)

// DelayLine accepts connections on ln and relays each to target, holding
// every chunk of data in each direction for oneWay before passing it on:
// a round trip through it takes at least 2 × oneWay. It stands in for
// netem, which these kernels lack; unlike netem it delays data, not
// packets, so TCP between the ends sees the delay as a slow peer, not as
// a long path. It returns when ln is closed.
func DelayLine(ln net.Listener, target string, oneWay time.Duration) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go relay(c, target, oneWay) // exits when either side closes
	}
}

func relay(c net.Conn, target string, oneWay time.Duration) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); delayCopy(t, c, oneWay) }()
	go func() { defer wg.Done(); delayCopy(c, t, oneWay) }()
	wg.Wait()
}

type chunk struct {
	b  []byte
	at time.Time
}

// delayCopy copies src to dst, each chunk oneWay after it was read. The
// queue holds up to 16 MiB, more than a second of the fastest link's
// bandwidth-delay product; beyond that the reader waits, and TCP pushes
// back on the sender.
func delayCopy(dst, src net.Conn, oneWay time.Duration) {
	q := make(chan chunk, 256)
	go func() { // exits at src's end or error
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if d := time.Until(ch.at.Add(oneWay)); d > 0 {
			time.Sleep(d) // the delay line's delay, not a wait for a condition
		}
		if _, err := dst.Write(ch.b); err != nil {
			src.Close()
			for range q { // let the reader finish
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite() // pass the end on
	} else {
		io.Copy(io.Discard, src)
	}
}
