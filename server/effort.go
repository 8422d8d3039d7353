package server

import "time"

// effort spends on zstd's slower, smaller level the time a stream would
// otherwise spend waiting for its socket. A write that waits is the link
// being behind the stream: the time it waited beyond what a write that did
// not wait takes (the copy into the socket buffer) is put aside as credit,
// and a zstd block is made at the slower level when the credit covers what
// that level costs more than the fastest. The buffer then drains while the
// slower blocks are made and fills while the fast ones are, and the two
// alternate, with no model of the link. A stream whose writes never wait
// (its CPU, or the client's, is the limit) makes none.
//
// The stream asks for it only where the link is slow enough that even
// every block at the slower level would wait on it (codecPolicy.outpaces):
// on the office link (50 MB/s, 20 ms), where the fastest level keeps the
// link busy with little to spare, slower blocks for 15-25 % of the time
// the writes waited gained nothing measurable, and in one run of the
// whole bench the stream took 1.36 s per 256 MiB of log lines against
// 1.29 (two cores, shared with the client and the link's own delay).
//
// The credit is conservative: the waits that remain after a slower block
// already reflect its cost, which is charged again, so on a link slower
// than both levels about one block in eight stays at the fastest
// (TestEffort). Two signals that looked more direct did worse on the
// office link (50 MB/s, 20 ms), 256 MiB of log lines: the kernel's full
// send queue (SIOCOUTQ over a quarter of SO_SNDBUF) stays set long after
// the stream fell behind, and nearly every block went out slower and
// CPU-bound, 1.45-1.50 s against 1.29-1.34 at the fastest level alone;
// a slower block after each write that waited made 5-15 of 1024, as the
// autotuned buffer grows through most of such a stream and few writes
// wait long.
type effort struct {
	credit  time.Duration
	copyNs  float64 // the fastest write per byte seen: one that did not wait
	extraNs float64 // what the slower level costs more per raw byte (0: not measured yet)
	blocks  int     // blocks made at the slower level
}

// maxCopyNs bounds the time per byte a write that did not wait is taken
// to cost: on a slow link every write of a stream may wait, the first into
// a socket buffer of 16 KiB included, and none shows the copy alone. A
// write that did not wait took 0.2 ns per byte on loopback here.
const maxCopyNs = 1.0

// maxCredit bounds the credit, so that the waits of a slow spell are not
// all spent at once when it ends; where a slower block costs more than a
// quarter of it (a slow machine, the race detector), the bound is maxBurst
// such blocks. The waits of a stream come in lumps as the kernel frees
// room in the socket buffer: on the mobile link, a bound of 4 slower
// blocks (3-4 ms) made 36-47 of 123 zstd blocks slower instead of 111-114.
const (
	maxCredit = 20 * time.Millisecond
	maxBurst  = 4
)

// betterCostFactor is the slower level's cost over the fastest's until a
// block measured it: 5.2 against 2.4 ns per byte of log lines.
const betterCostFactor = 2.2

// wrote records a write of n bytes that took this long.
func (e *effort) wrote(n int, took time.Duration) {
	if n <= 0 {
		return
	}
	ns := float64(took) / float64(n)
	if e.copyNs == 0 || ns < e.copyNs {
		e.copyNs = min(ns, maxCopyNs)
	}
	e.credit += took - time.Duration(e.copyNs*float64(n))
}

// extra is what the slower level is expected to cost more than the fastest,
// whose cost is fastNs per byte, for raw bytes.
func (e *effort) extra(raw int, fastNs float64) time.Duration {
	ns := e.extraNs
	if ns == 0 {
		ns = (betterCostFactor - 1) * fastNs
	}
	return time.Duration(ns * float64(raw))
}

// more reports whether the next zstd block, of raw bytes, may be made at
// the slower level; fastNs is the fastest level's cost per byte (0: not
// measured yet).
func (e *effort) more(raw int, fastNs float64) bool {
	if fastNs <= 0 {
		return false
	}
	extra := e.extra(raw, fastNs)
	e.credit = min(e.credit, max(maxCredit, maxBurst*extra))
	return e.credit >= extra
}

// spent records that the slower level took this long for raw bytes. The
// first such block of a stream may have paid for the encoder's tables (a
// pooled encoder has them already): it is charged what was expected.
func (e *effort) spent(raw int, took time.Duration, fastNs float64) {
	if raw <= 0 {
		return
	}
	if e.blocks++; e.blocks == 1 {
		e.credit -= e.extra(raw, fastNs)
		return
	}
	extra := max(float64(took)/float64(raw)-fastNs, 0)
	if e.extraNs == 0 {
		e.extraNs = extra
	} else {
		e.extraNs = ewma(e.extraNs, extra)
	}
	e.credit -= time.Duration(extra * float64(raw))
}
