package client

import (
	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// ledger records what the partial file holds, block by block: the xxh3-64
// of every block whose bytes on disk are known (hashed there, or written
// after their event's hash verified them), and which blocks belong to the
// version being downloaded. The coordinator owns it between passes; during
// a pass only the sink writes it.
type ledger struct {
	size  int64
	bs    int
	hash  []uint64
	known []bool // hash[i] is the hash of what block i holds on disk
	have  []bool // block i is verified for the version being downloaded
}

func newLedger(size int64, bs int) *ledger {
	n := chunker.Count(size, bs)
	return &ledger{size: size, bs: bs, hash: make([]uint64, n), known: make([]bool, n), have: make([]bool, n)}
}

// wrote records block i, written with bytes that hash to h, verified for
// the version being downloaded.
func (l *ledger) wrote(i int64, h uint64) {
	l.hash[i], l.known[i], l.have[i] = h, true, true
}

// hashed records block i as read from disk.
func (l *ledger) hashed(i int64, h uint64) { l.hash[i], l.known[i] = h, true }

// rebase adopts manifest m: a block belongs to its version if what is on
// disk hashes to m's hash of it, at the same length. It needs no reading
// of the disk, and m's block size must be the ledger's. It returns the
// ledger to use, resized to m's size.
func (l *ledger) rebase(m *manifest.Manifest) *ledger {
	next := newLedger(m.Size, m.BlockSize)
	for i := range min(int64(len(l.hash)), int64(len(next.hash))) {
		_, was := chunker.Span(l.size, l.bs, i)
		_, now := chunker.Span(m.Size, m.BlockSize, i)
		if !l.known[i] || was != now {
			continue
		}
		next.hashed(i, l.hash[i])
		next.have[i] = l.hash[i] == uint64(m.Hashes[i])
	}
	return next
}

// bytes returns the bytes of the blocks held.
func (l *ledger) bytes() int64 {
	var n int64
	for i, ok := range l.have {
		if ok {
			_, k := chunker.Span(l.size, l.bs, int64(i))
			n += int64(k)
		}
	}
	return n
}

// count returns how many blocks are held.
func (l *ledger) count() int64 {
	var n int64
	for _, ok := range l.have {
		if ok {
			n++
		}
	}
	return n
}

// firstMissing returns the index of the first block not held.
func (l *ledger) firstMissing() int64 {
	for i, ok := range l.have {
		if !ok {
			return int64(i)
		}
	}
	return int64(len(l.have))
}

// missing returns the byte spans of the blocks not held, adjacent blocks
// merged.
func (l *ledger) missing() []span {
	var spans []span
	for i, ok := range l.have {
		if ok {
			continue
		}
		off, n := chunker.Span(l.size, l.bs, int64(i))
		if k := len(spans) - 1; k >= 0 && spans[k].end == off {
			spans[k].end = off + int64(n)
		} else {
			spans = append(spans, span{off, off + int64(n)})
		}
	}
	return spans
}
