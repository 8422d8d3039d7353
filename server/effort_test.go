package server

import (
	"testing"
	"time"
)

// TestEffort: the slower zstd level is used only with time the writes
// waited, about as much as there is, and not all at once after a slow
// spell.
func TestEffort(t *testing.T) {
	const (
		raw    = 256 << 10
		frame  = 70 << 10 // a zstd block of log lines in base64
		fastNs = 2.4      // zstd's fastest level, ns per raw byte
		slowNs = 5.2      // its better level
	)
	copyTook := time.Duration(0.2 * frame) // a write that does not wait: 0.2 ns per byte
	slowTook := time.Duration(1363149)     // slowNs per byte of raw
	// run sends n blocks over a link that takes linkNs per raw byte of a
	// block at the fastest level (a tenth less at the slower one, whose
	// blocks are smaller) behind a socket buffer of 4 ms: a write waits
	// when the buffer is full. It returns how many blocks went out at the
	// slower level.
	run := func(linkNs float64, n int) int {
		var e effort
		slower := 0
		const buffer = 4 * time.Millisecond
		var queue time.Duration // link time of the bytes in the buffer
		for range n {
			cpu, link := fastNs, linkNs
			if e.more(raw, fastNs) {
				slower++
				cpu, link = slowNs, 0.9*linkNs
				e.spent(raw, slowTook, fastNs)
			}
			queue = max(queue-time.Duration(cpu*raw), 0) + time.Duration(link*raw)
			wait := max(queue-buffer, 0)
			queue -= wait
			e.wrote(frame, copyTook+wait)
		}
		return slower
	}
	tests := []struct {
		name     string
		linkNs   float64
		min, max int // of 1000 blocks at the slower level
	}{
		{"the stream's CPU is the limit: writes never wait", 2, 0, 0},
		{"link as fast as the fastest level", fastNs, 0, 0},
		// 1.8 ns per byte to spare; a slower block costs 2.8 more and saves
		// 0.4 on the link: the link stays busy up to 56 %; the credit,
		// charging each slower block in full, stops short of it.
		{"link a little slower", 4.2, 250, 560},
		{"link slower than the slower level: most blocks", 8, 800, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(tt.linkNs, 1000)
			t.Logf("%d of 1000 blocks at the slower level", got)
			if got < tt.min || got > tt.max {
				t.Errorf("%d of 1000 blocks at the slower level, want %d to %d", got, tt.min, tt.max)
			}
		})
	}

	// A long wait is not spent all at once.
	var e effort
	e.wrote(frame, copyTook)
	e.wrote(frame, time.Second)
	burst := 0
	for e.more(raw, fastNs) {
		e.spent(raw, slowTook, fastNs)
		burst++
	}
	if burst == 0 || burst > 30 {
		t.Errorf("a wait of 1 s paid for %d slower blocks in a row, want some, capped", burst)
	}
	// Nothing measured of zstd yet: no slower block.
	e = effort{}
	e.wrote(frame, copyTook)
	e.wrote(frame, time.Second)
	if e.more(raw, 0) {
		t.Error("a slower block before the fastest level was measured")
	}
}
