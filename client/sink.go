package client

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"github.com/ferry-dev/ferry/manifest"
)

// sink writes verified blocks to the partial file and records them in the
// ledger on a goroutine of its own, and feeds the in-order whole-file
// digests there too, with the SHA-256, when the download computes one, on a
// third, so that on a machine with two cores the network, parsing and
// decoding run beside the disk writes and the hashing (measured: a single
// goroutine spent about as long hashing and writing as reading and
// decoding). A few block buffers circulate between the streams and the
// sink, which bounds memory and applies backpressure.
type sink struct {
	part   *partial
	book   *ledger
	order  *inOrder // nil once blocks came out of order
	onDone func(n int)

	in   chan *block
	sha  chan *block // nil without a SHA-256
	free chan *block
	done chan struct{}

	mu  sync.Mutex
	err error
}

type block struct {
	i    int64 // index
	off  int64
	hash uint64 // the xxh3-64 its event gave, which the bytes matched
	data []byte
}

// sinkBuffers is small so that the buffers stay in the CPU's cache: with
// six, base64 decoding into them cost four times as much. The SHA-256 stage
// holds one more.
const sinkBuffers = 3

// writebackBytes is how many bytes the sink writes between two calls of
// writeback.
const writebackBytes = 16 << 20

// startSink starts the sink goroutines; they exit when close is called. The
// sink owns book and order until then; onDone is called with the length of
// every block written.
func startSink(part *partial, book *ledger, order *inOrder, onDone func(n int)) *sink {
	n := sinkBuffers
	s := &sink{part: part, book: book, onDone: onDone, in: make(chan *block, n), done: make(chan struct{})}
	if order != nil && order.next == 0 {
		s.order = order // a pass that does not start at 0 cannot feed it
	} else if order != nil {
		order.abandon()
	}
	if s.order != nil && s.order.sha != nil {
		n++
		s.sha = make(chan *block, n)
	}
	s.free = make(chan *block, n)
	for range n {
		s.free <- &block{}
	}
	go s.run()
	return s
}

func (s *sink) run() {
	defer close(s.done)
	var hashed chan struct{}
	if s.sha != nil {
		hashed = make(chan struct{})
		go s.hashSHA(s.order.sha, hashed)
	}
	var dirty int
	for b := range s.in {
		if s.failed() == nil {
			if _, err := s.part.WriteAt(b.data, b.off); err != nil {
				s.fail(diskError(err))
			} else {
				if dirty += len(b.data); dirty >= writebackBytes {
					s.part.writeback()
					dirty = 0
				}
				s.book.wrote(b.i, b.hash)
				s.onDone(len(b.data))
				if s.feed(b) && s.sha != nil {
					s.sha <- b
					continue
				}
			}
		}
		s.free <- b
	}
	if s.sha != nil {
		close(s.sha)
		<-hashed
	}
}

// feed adds a block to the in-order xxh3-128 and reports whether it was in
// order, or gives the digests up when blocks come out of order (the file is
// hashed at the end then).
func (s *sink) feed(b *block) bool {
	if s.order == nil {
		return false
	}
	if b.off != s.order.next {
		s.order.abandon()
		s.order = nil
		return false
	}
	s.order.sum.Write(b.data)
	s.order.next += int64(len(b.data))
	return true
}

// hashSHA feeds the in-order blocks to the SHA-256 in the order feed
// accepted them.
func (s *sink) hashSHA(h hash.Hash, done chan<- struct{}) {
	defer close(done)
	for b := range s.sha {
		h.Write(b.data)
		s.free <- b
	}
}

// buffer returns a free block buffer with room for a block of blockSize,
// waiting while the sink is behind.
func (s *sink) buffer(blockSize int) *block {
	b := <-s.free
	if cap(b.data) < blockSize+8 {
		b.data = make([]byte, 0, blockSize+8)
	}
	return b
}

// give hands a filled buffer to the sink.
func (s *sink) give(b *block) { s.in <- b }

// recycle returns an unused buffer.
func (s *sink) recycle(b *block) { s.free <- b }

func (s *sink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// failed returns the sink's first write error, if any.
func (s *sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// close waits until every block given is written and returns the first
// write error.
func (s *sink) close() error {
	close(s.in)
	<-s.done
	return s.failed()
}

// inOrder is the whole-file digest of a download whose blocks have so far
// all arrived in order from offset 0, so that the file need not be read
// again at the end.
type inOrder struct {
	sum  *manifest.Summer // xxh3-128
	sha  hash.Hash        // nil without Options.SHA256
	next int64            // the offset expected next
	gone bool
}

func newInOrder(withSHA bool) *inOrder {
	o := &inOrder{sum: manifest.NewXXH3Summer()}
	if withSHA {
		o.sha = sha256.New()
	}
	return o
}

func (o *inOrder) abandon() { o.gone = true }

// digests returns the digests of a file of size bytes, if every byte went
// through in order.
func (o *inOrder) digests(size int64) (manifest.Digests, bool) {
	if o == nil || o.gone || o.next != size {
		return manifest.Digests{}, false
	}
	d := o.sum.Digests()
	if o.sha != nil {
		d.SHA256 = hex.EncodeToString(o.sha.Sum(nil))
	}
	return d, true
}
