package client

import (
	"fmt"
	"sync"
)

// sink writes verified blocks to the partial file and feeds the whole-file
// xxh3-128 on a goroutine of its own, and the SHA-256, when the download
// computes one, on a third, so that on a machine with two cores the network,
// parsing and decoding run beside the disk writes and the hashing (measured:
// a single goroutine spent about as long hashing and writing as reading and
// decoding). A few block buffers circulate between the streams and the
// sink, which bounds memory and applies backpressure.
type sink struct {
	d    *download
	in   chan *block
	sha  chan *block // nil without a SHA-256
	free chan *block
	done chan struct{}

	mu  sync.Mutex
	err error
}

type block struct {
	off  int64
	data []byte
}

// sinkBuffers is small so that the buffers stay in the CPU's cache: with
// six, base64 decoding into them cost four times as much. The SHA-256 stage
// holds one more.
const sinkBuffers = 3

// writebackBytes is how many bytes the sink writes between two calls of
// startWriteback.
const writebackBytes = 16 << 20

// startSink starts the sink goroutines; they exit when close is called.
func (d *download) startSink() *sink {
	n := sinkBuffers
	s := &sink{d: d, in: make(chan *block, n), done: make(chan struct{})}
	if d.sha != nil {
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
		go s.hash(hashed)
	}
	var dirty int
	for b := range s.in {
		if s.failed() == nil {
			if _, err := s.d.part.WriteAt(b.data, b.off); err != nil {
				s.fail(fmt.Errorf("%w: %w", ErrDisk, err))
			} else {
				if dirty += len(b.data); dirty >= writebackBytes {
					startWriteback(s.d.part)
					dirty = 0
				}
				inOrder := s.d.feedSum(b.off, b.data)
				s.d.stats.done.Add(int64(len(b.data)))
				s.d.progress("")
				if inOrder && s.sha != nil {
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

// hash feeds the in-order blocks to the SHA-256; they come in the order
// feedSum accepted them.
func (s *sink) hash(done chan<- struct{}) {
	defer close(done)
	s.d.sumMu.Lock()
	h := s.d.sha
	s.d.sumMu.Unlock()
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
