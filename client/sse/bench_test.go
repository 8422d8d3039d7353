package sse

// BenchmarkRead, one 350 KB Ferry block event per operation from an
// in-memory stream, medians of 6 runs (go test -bench . -count 6) on the
// 2-core AMD EPYC CI machine, shared with other builds at the time:
//
//	Reader   14.0 GB/s   0 allocs/op (7 events in 8 allocate an 8-byte ID)
//	go-sse    0.56 GB/s  2 allocs/op, 705 KB/op (the event text and its data)
//	bufio    17.3 GB/s   0 allocs/op (LF and "data: " only; not conformant)
//
// Reader/go-sse = 25, Reader/bufio = 0.81: the baseline scans each line for
// LF only, the Reader for LF and CR. BenchmarkReadSmall, events of 83 bytes
// with a fixed ID: 120 ns and no allocation per event.

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ferry-dev/ferry/chunker"
	gosse "github.com/tmaxmax/go-sse"
)

// blockStream returns n Ferry block events of chunker.DefaultBlockSize
// random bytes each, about 350 KB of base64 in one data line per event, as
// a server with the identity encoding sends them.
func blockStream(n int) []byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, chunker.DefaultBlockSize)
	enc := chunker.NewEncoder(chunker.Identity)
	var stream []byte
	for i := range n {
		for j := range raw {
			raw[j] = byte(rnd.Uint32())
		}
		off := int64(i) * chunker.DefaultBlockSize
		stream = append(stream, enc.Frame(off, raw, chunker.Hash(raw))...)
	}
	return stream
}

// loopReader reads its bytes over and over, for ever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

const benchEvents = 8

// BenchmarkRead parses an endless stream of block events, one event per
// operation, with the Reader, go-sse's Read and a bufio.Reader baseline.
func BenchmarkRead(b *testing.B) {
	stream := blockStream(benchEvents)
	perEvent := int64(len(stream) / benchEvents)

	b.Run("Reader", func(b *testing.B) {
		r := NewReader(&loopReader{b: stream})
		b.SetBytes(perEvent)
		b.ReportAllocs()
		for b.Loop() {
			ev, err := r.Next()
			if err != nil || ev.Type != chunker.EventBlock {
				b.Fatalf("Next() = type %q, %v; want type %q", ev.Type, err, chunker.EventBlock)
			}
		}
	})

	b.Run("go-sse", func(b *testing.B) {
		src := &loopReader{b: stream}
		b.SetBytes(perEvent)
		b.ReportAllocs()
		n := 0
		for ev, err := range gosse.Read(src, &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
			if err != nil || ev.Type != chunker.EventBlock {
				b.Fatalf("Read() = type %q, %v; want type %q", ev.Type, err, chunker.EventBlock)
			}
			if n++; n == b.N {
				break
			}
		}
	})

	// The baseline knows only LF, "data: " and blank lines. Like the
	// Reader, it copies each data line once, into the event's data, as a
	// long line does not fit in the bufio.Reader.
	b.Run("bufio", func(b *testing.B) {
		br := bufio.NewReaderSize(&loopReader{b: stream}, readSize)
		var data []byte
		b.SetBytes(perEvent)
		b.ReportAllocs()
		for b.Loop() {
			data = data[:0]
			for {
				line, err := br.ReadSlice('\n')
				if len(line) == 1 && err == nil {
					break // a blank line ends the event
				}
				isData := bytes.HasPrefix(line, []byte("data: "))
				if isData {
					line = line[len("data: "):]
				}
				for {
					if isData {
						data = append(data, line...)
					}
					if !errors.Is(err, bufio.ErrBufferFull) {
						break
					}
					line, err = br.ReadSlice('\n')
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if len(data) < chunker.DefaultBlockSize {
				b.Fatalf("event has %d bytes of data, want more than %d", len(data), chunker.DefaultBlockSize)
			}
		}
	})
}

// BenchmarkReadSmall parses small events, where the cost per line shows.
func BenchmarkReadSmall(b *testing.B) {
	stream := []byte("id: 1024\nevent: block\ndata: {\"offset\":1024,\"data\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}\n\n")
	r := NewReader(&loopReader{b: stream})
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
