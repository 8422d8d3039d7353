package client

import (
	"fmt"
	"sync"
)

// sink writes verified blocks to the partial file and feeds the whole-file
// digests on a goroutine of its own, so that on a machine with two cores
// the network, parsing and decoding run beside the disk writes and the
// SHA-256 (measured: a single goroutine spent about as long hashing and
// writing as reading and decoding). A few block buffers circulate between
// the streams and the sink, which bounds memory and applies backpressure.
type sink struct {
	d    *download
	in   chan *block
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
// six, base64 decoding into them cost four times as much.
const sinkBuffers = 3

// startSink starts the sink goroutine; it exits when close is called.
func (d *download) startSink() *sink {
	s := &sink{d: d, in: make(chan *block, sinkBuffers), free: make(chan *block, sinkBuffers), done: make(chan struct{})}
	for range sinkBuffers {
		s.free <- &block{}
	}
	go s.run()
	return s
}

func (s *sink) run() {
	defer close(s.done)
	for b := range s.in {
		if s.failed() == nil {
			if _, err := s.d.part.WriteAt(b.data, b.off); err != nil {
				s.fail(fmt.Errorf("%w: %w", ErrDisk, err))
			} else {
				s.d.feedSum(b.off, b.data)
				s.d.stats.done.Add(int64(len(b.data)))
				s.d.progress("")
			}
		}
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
