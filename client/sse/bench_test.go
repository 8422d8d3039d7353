package sse

// Medians of 5 runs (go test -bench . -benchmem, runs of the Reader before
// and after it parsed in place interleaved) on the 2-core AMD EPYC CI
// machine, shared with other builds at the time; one 350 KB Ferry block
// event per operation, 0 allocs/op for the Reader throughout:
//
//	                    copying Reader      in place            Reads/event
//	Read/Reader         14.0 GB/s  24.9 µs  18.3 GB/s  19.1 µs  5.38 -> 1
//	ReadSocket/block    13.6 GB/s  25.7 µs  16.5 GB/s  21.2 µs  5.60 -> 2.24
//	ReadSocket/varied   12.4 GB/s  14.9 µs  15.3 GB/s  12.1 µs  2.96 -> 0.87
//	ReadTCP              3.4 GB/s   102 µs   3.9 GB/s  89.4 µs  5.36 -> 2.32
//	Read/go-sse          0.5 GB/s  2 allocs/op, 705 KB/op (the event text and its data)
//	Read/bufio          16.5 GB/s  (LF and "data: " only; not conformant)
//
// The bufio baseline copies each data line once, as the Reader used to; the
// Reader now beats it although it scans for CR as well as LF. ReadSocket's
// source hands out 16 KiB to 400 KiB per Read, so a 350 KB event takes two
// Reads or so. maxRead of 256 KiB, 512 KiB and 1 MiB are within the noise
// of each other in time; 256 KiB takes two Reads per event, 1 MiB a larger
// buffer. BenchmarkReadSmall, events of 83 bytes with a fixed ID: 114 ns
// (was 134) and no allocation per event.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/ferry-dev/ferry/chunker"
	gosse "github.com/tmaxmax/go-sse"
)

// blockStream returns n Ferry block events of chunker.DefaultBlockSize
// random bytes each, about 350 KB of base64 in one data line per event, as
// a server with the identity encoding sends them.
func blockStream(n int) []byte {
	return frames(n, func(*rand.Rand) int { return chunker.DefaultBlockSize })
}

// variedStream returns n block events of 16 KiB to 256 KiB of random bytes
// each, about 21 KB to 350 KB of base64, like the events of compressed
// blocks.
func variedStream(n int) []byte {
	return frames(n, func(rnd *rand.Rand) int { return 16<<10 + rnd.IntN(chunker.DefaultBlockSize-16<<10+1) })
}

// frames returns n block events, each of size(rnd) random bytes.
func frames(n int, size func(*rand.Rand) int) []byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	enc := chunker.NewEncoder(chunker.Identity)
	var stream []byte
	var off int64
	for range n {
		raw := make([]byte, size(rnd))
		for j := range raw {
			raw[j] = byte(rnd.Uint32())
		}
		stream = append(stream, enc.Frame(off, raw, chunker.Hash(raw))...)
		off += int64(len(raw))
	}
	return stream
}

// loopReader reads its bytes over and over, for ever, as much as each Read
// asks for up to the end of the bytes, and counts the Reads.
type loopReader struct {
	b     []byte
	off   int
	reads int
}

func (l *loopReader) Read(p []byte) (int, error) {
	l.reads++
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// socketReader reads its bytes over and over, the way a socket does under a
// fast sender: each Read returns what is "available", a random amount from
// 16 KiB to 400 KiB, or less if p is shorter. It counts the Reads.
type socketReader struct {
	b     []byte
	off   int
	rnd   *rand.Rand
	reads int
}

func newSocketReader(b []byte) *socketReader {
	return &socketReader{b: b, rnd: rand.New(rand.NewPCG(3, 4))}
}

func (s *socketReader) Read(p []byte) (int, error) {
	s.reads++
	p = p[:min(len(p), 16<<10+s.rnd.IntN(384<<10+1))]
	for n := 0; n < len(p); {
		c := copy(p[n:], s.b[s.off:])
		s.off = (s.off + c) % len(s.b)
		n += c
	}
	return len(p), nil
}

const benchEvents = 8

// BenchmarkRead parses an endless stream of block events, one event per
// operation, with the Reader, go-sse's Read and a bufio.Reader baseline.
func BenchmarkRead(b *testing.B) {
	stream := blockStream(benchEvents)
	perEvent := int64(len(stream) / benchEvents)

	b.Run("Reader", func(b *testing.B) {
		src := &loopReader{b: stream}
		nextBlocks(b, perEvent, src, &src.reads)
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

	// The baseline knows only LF, "data: " and blank lines. It copies each
	// data line into the event's data, as a long line does not fit in its
	// bufio.Reader of 64 KiB; so did the Reader before it parsed in place.
	b.Run("bufio", func(b *testing.B) {
		br := bufio.NewReaderSize(&loopReader{b: stream}, 64<<10)
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

// BenchmarkReadSocket parses endless streams of block events, one event per
// operation, from a socketReader: events of one size, as of incompressible
// data, and of varied sizes, as of compressed blocks.
func BenchmarkReadSocket(b *testing.B) {
	streams := []struct {
		name   string
		stream []byte
	}{
		{"block", blockStream(benchEvents)},
		{"varied", variedStream(4 * benchEvents)},
	}
	for _, s := range streams {
		b.Run(s.name, func(b *testing.B) {
			src := newSocketReader(s.stream)
			nextBlocks(b, int64(len(s.stream)/bytes.Count(s.stream, []byte("\n\n"))), src, &src.reads)
		})
	}
}

// BenchmarkReadTCP parses an endless stream of block events, one event per
// operation, from a loopback TCP connection, where each Read is a system
// call. A goroutine writes the stream until the benchmark closes the
// connection; it shares the machine's cores with the Reader.
func BenchmarkReadTCP(b *testing.B) {
	stream := blockStream(benchEvents)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, err := c.Write(stream); err != nil {
				return // the benchmark closed the connection
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		conn.Close()
		<-done
	}()

	src := &countingReader{r: conn}
	nextBlocks(b, int64(len(stream)/benchEvents), src, &src.reads)
}

// nextBlocks reads one block event of perEvent bytes from src per
// operation, and reports how many Reads of src that took (counted in reads).
func nextBlocks(b *testing.B, perEvent int64, src io.Reader, reads *int) {
	r := NewReader(src)
	b.SetBytes(perEvent)
	b.ReportAllocs()
	for b.Loop() {
		ev, err := r.Next()
		if err != nil || ev.Type != chunker.EventBlock {
			b.Fatalf("Next() = type %q, %v; want type %q", ev.Type, err, chunker.EventBlock)
		}
	}
	b.ReportMetric(float64(*reads)/float64(b.N), "reads/op")
}

// countingReader counts the Reads of its reader.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
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
