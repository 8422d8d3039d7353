package server

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// linkRate returns a function that reports the connection's delivery rate
// in bytes per second as the kernel measures it (TCP_INFO's
// tcpi_delivery_rate: bytes acknowledged by the peer over time, whatever
// sits in the socket buffers), and whether the send queue is full (SIOCOUTQ
// against SO_SNDBUF), so that the rate is the link's; or nil where the
// connection is not TCP.
// The codec policy times writes too, but behind a socket buffer of
// megabytes a write returns long before its bytes are on the wire.
func linkRate(c net.Conn) func() (float64, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (float64, bool) {
		var rate float64
		limited := false
		if err := raw.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return
			}
			outq, err1 := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
			sndbuf, err2 := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			rate = float64(info.Delivery_rate)
			// Only a full send queue says the link (or the peer) is what
			// limits us; otherwise the delivery rate is our own writing
			// rate, and on loopback, while compressing, it would make the
			// link look slow enough to keep compressing.
			limited = err1 == nil && err2 == nil && outq*4 >= sndbuf // SO_SNDBUF counts overhead: a full queue holds about half of it in payload
		}); err != nil || rate == 0 {
			return 0, false
		}
		return rate, limited
	}
}
