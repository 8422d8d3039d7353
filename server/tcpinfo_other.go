//go:build !linux

package server

import "net"

// linkRate is nil where the kernel's delivery rate is not read.
func linkRate(net.Conn) func() (float64, bool) { return nil }
