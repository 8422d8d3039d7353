package server

import (
	"math"
	"slices"
	"time"

	"github.com/ferry-dev/ferry/chunker"
)

// codecPolicy decides, block by block and by measurement, which codec to
// try, if any: the one with which a raw byte leaves soonest, given the
// link's measured time per byte on the wire and each codec's measured cost
// and ratio. On a fast link the CPU is the bottleneck and blocks go out as
// they are (on loopback, log lines sent all in S2 took 0.42-0.50 s per
// 256 MiB against 0.37 s as they are, and all in zstd 0.94-1.02 s); on a
// slow one (writes block on a full socket) compressible blocks are
// compressed, with zstd's smaller output where the link is slow enough to
// pay for its time, with S2 (four times as fast) where it is not. Each codec
// is tried on every probeEvery-th block, to follow changes in the data, and
// more rarely while it does not pay.
type codecPolicy struct {
	codecs  []string // the codecs the stream may use, cheapest first
	stats   []codecStats
	blocks  int64
	wNs, wB float64 // decayed sums of sending time and bytes on the wire
	// linkNs is the kernel's time per byte on the wire, from its delivery
	// rate while the send queue was full (0: none such lately).
	linkNs float64
	// probed: the latest choice was a codec's measurement, not the
	// policy's decision.
	probed bool
}

type codecStats struct {
	costNs  float64 // compressing: ns per raw byte
	ratio   float64 // compressed size ÷ raw size
	samples int
	// every is the codec's probe interval in blocks: probeEvery, doubled
	// after each try that did not pay (the block did not shrink, or sending
	// it as it is or in another codec would have been sooner), up to
	// maxProbeEvery. Probes cost:
	// with a zstd probe every 32nd block random data came out at 0.86x plain
	// HTTP against 1.03x sent as it is, and log lines on loopback at 0.68x
	// against 0.77x. The decision itself follows the link at every block
	// from the live write times; probes only refresh the codec's cost and
	// ratio. The first try of a codec pays for its buffers and is measured
	// again on the next block. next is the block of its next probe, last
	// the block of its latest sample.
	every, next, last int64
}

const (
	probeEvery    = 16
	maxProbeEvery = 256
	ewmaWeight    = 0.25
	// sendDecay weighs the sending time of past blocks. Sums rather than an
	// average of per-block rates: behind a socket buffer most writes return
	// at once and a few wait long, and only time over bytes tells the rate.
	sendDecay = 0.9
)

func newCodecPolicy(codecs []string) codecPolicy {
	return codecPolicy{codecs: codecs, stats: make([]codecStats, len(codecs))}
}

func ewma(old, sample float64) float64 { return old + ewmaWeight*(sample-old) }

// choose returns the codec to try on the next block, or chunker.Identity.
func (p *codecPolicy) choose() string {
	p.blocks++
	p.probed = false
	if len(p.codecs) == 0 {
		return chunker.Identity
	}
	for i, st := range p.stats {
		if st.samples < 2 {
			p.probed = true
			return p.codecs[i] // each is measured twice at the start
		}
	}
	for i := range p.stats {
		if st := &p.stats[i]; p.blocks >= st.next {
			st.next = p.blocks + st.every
			p.probed = true
			return p.codecs[i]
		}
	}
	// The time a raw byte takes to leave, per option: compressing overlaps
	// with sending (the socket buffer takes one block while the next is
	// compressed), so it is the larger of the two. Whether to compress at
	// all counts the compressing time half as much again: the client pays
	// to decompress (a third to a quarter of it, measured), and where the
	// client waits on its own CPU and shares the machine (ferry bench on
	// loopback) the writes look slow although compressing takes CPU from
	// the client; log lines went out a quarter compressed there without
	// it, at 0.48x plain HTTP against 0.69x sent as they are. Which codec
	// then is a matter of their times as they are: with the penalty, zstd
	// on the office link (3.3-4.5 ns per byte, the link leaving 4.1 for
	// it) lost to S2 (6.6, all on the link) on a quarter to a third of
	// the blocks, and the file took 1.28-1.41 s instead of 1.16-1.18.
	best, bestNs := chunker.Identity, 0.0
	for i := range p.stats {
		if p.leaveNs(i, 1.5) >= p.identityNs() {
			continue // it does not pay
		}
		if ns := p.leaveNs(i, 1); best == chunker.Identity || ns < bestNs {
			best, bestNs = p.codecs[i], ns
		}
	}
	return best
}

// madeSlower records that the block of the latest choice went out in codec
// at a slower level than the one the policy weighs: not a sample of its
// cost, but a block in a run of them (the next one is no probe).
func (p *codecPolicy) madeSlower(codec string) {
	if i := slices.Index(p.codecs, codec); i >= 0 {
		p.stats[i].last = p.blocks
	}
}

// outpaces reports whether the link is slow enough for codec made at factor
// times its measured cost: its blocks' time on the link would still be the
// longer.
func (p *codecPolicy) outpaces(codec string, factor float64) bool {
	i := slices.Index(p.codecs, codec)
	if i < 0 || p.stats[i].samples == 0 {
		return false
	}
	st := p.stats[i]
	return st.ratio*4/3*p.writeNs() >= factor*st.costNs
}

// costNs is codec's measured cost per raw byte (0 before it was measured).
func (p *codecPolicy) costNs(codec string) float64 {
	if i := slices.Index(p.codecs, codec); i >= 0 && p.stats[i].samples > 0 {
		return p.stats[i].costNs
	}
	return 0
}

// writeNs is the link's time per byte on the wire, from the blocks sent so
// far (0 before the first).
func (p *codecPolicy) writeNs() float64 {
	if p.wB == 0 {
		return 0
	}
	// Behind a socket buffer of megabytes the writes of a short stream
	// return before their bytes leave: the kernel's rate, where it has one,
	// is the truer. (On a 50 MiB/s link shaped by the kernel, log lines
	// went out S2-compressed, 0.31 of the file on the wire, where zstd's
	// 0.19 was faster.)
	return max(p.wNs/p.wB, p.linkNs)
}

// linked records the kernel's delivery rate in bytes per second, and
// whether the send queue was full when it was read: only then is it the
// link's rate rather than ours. Without such samples linkNs fades, and the
// write times decide.
func (p *codecPolicy) linked(rate float64, full bool) {
	if !full || rate <= 0 {
		p.linkNs *= 0.8
		return
	}
	if ns := 1e9 / rate; p.linkNs == 0 {
		p.linkNs = ns
	} else {
		p.linkNs = ewma(p.linkNs, ns)
	}
}

// identityNs is the time a raw byte takes to leave uncompressed: base64
// sends 4 bytes per 3.
func (p *codecPolicy) identityNs() float64 { return 4.0 / 3 * p.writeNs() }

// leaveNs is the time a raw byte takes to leave with codec i, its
// compressing time weighed by weight.
func (p *codecPolicy) leaveNs(i int, weight float64) float64 {
	st := p.stats[i]
	return max(weight*st.costNs, st.ratio*4/3*p.writeNs())
}

// compressed records that codec made n bytes of raw ones in took.
func (p *codecPolicy) compressed(codec string, raw, n int, took time.Duration) {
	i := slices.Index(p.codecs, codec)
	if raw == 0 || i < 0 {
		return
	}
	st := &p.stats[i]
	cost, ratio := float64(took.Nanoseconds())/float64(raw), min(1, float64(n)/float64(raw))
	probe := p.blocks-st.last > 1 // not one of a run of blocks in this codec
	switch {
	case st.samples == 0:
		st.costNs, st.ratio = cost, ratio
		st.every, st.next = probeEvery, p.blocks+probeEvery+int64(i) // spread the codecs' probes
	case st.samples == 1 || probe:
		// The first try allocated; a probe's cost is fresher than what was
		// measured blocks ago (a cost measured while the machine was busy
		// would otherwise keep the codec losing for probe after probe).
		st.costNs, st.ratio = cost, ewma(st.ratio, ratio)
	default:
		st.costNs, st.ratio = ewma(st.costNs, cost), ewma(st.ratio, ratio)
	}
	st.samples++
	st.last = p.blocks
	// A probe that loses to another codec did not pay either; a codec in
	// use whose latest block lost to another is not probed more rarely for
	// it (the decision itself moves to the other; a spike of its cost
	// while the machine was busy kept it from the blocks for 32 and more).
	if ratio >= 0.98 || p.wB > 0 && (p.leaveNs(i, 1.5) >= p.identityNs() || probe && p.leaveNs(i, 1) > p.otherNs(i)) {
		st.every = min(2*st.every, maxProbeEvery) // it did not pay
	} else {
		st.every = probeEvery
	}
}

// otherNs is the time a raw byte takes to leave by the best codec but i
// (+Inf when there is none measured).
func (p *codecPolicy) otherNs(i int) float64 {
	best := math.Inf(1)
	for j, st := range p.stats {
		if j != i && st.samples >= 2 {
			best = min(best, p.leaveNs(j, 1))
		}
	}
	return best
}

// wrote records that sending n bytes of a block took this long, reading
// and hashing included, compressing excluded.
func (p *codecPolicy) wrote(n int, took time.Duration) {
	if n == 0 {
		return
	}
	p.wNs = p.wNs*sendDecay + float64(max(took, 0).Nanoseconds())
	p.wB = p.wB*sendDecay + float64(n)
}
