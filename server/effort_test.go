package server

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
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
	if limit := int(maxCredit/(755*time.Microsecond)) + 1; burst == 0 || burst > limit { // 755 µs: the expected extra of a block
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

// slowWriter is a ResponseWriter behind a link of perByte per byte: each
// write returns once the link has taken it, as a full socket buffer does.
type slowWriter struct {
	h       http.Header
	perByte time.Duration
	sent    bytes.Buffer
}

func (w *slowWriter) Header() http.Header { return w.h }
func (w *slowWriter) WriteHeader(int)     {}
func (w *slowWriter) Flush()              {}
func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(len(p)) * w.perByte) // the link's time, not a wait for an event
	return w.sent.Write(p)
}

// TestStreamMakesSlowerZstdBehindASlowLink: a stream whose writes wait on
// a slow link makes zstd blocks at the slower level, and they decode to
// the file's bytes; behind a fast one it makes none.
func TestStreamMakesSlowerZstdBehindASlowLink(t *testing.T) {
	s, err := New(Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var lines bytes.Buffer
	for i := 0; lines.Len() < 12*chunker.DefaultBlockSize; i++ {
		fmt.Fprintf(&lines, "2026-12-07T10:%02d:%02d.%06dZ INFO ferry: served block %d of file-%d.bin to 10.0.%d.%d\n",
			i%60, i*7%60, i*7919%1000000, i*31%4096, i%50, i%256, i*13%256)
	}
	data := lines.Bytes()
	for _, tt := range []struct {
		name    string
		perByte time.Duration
		slower  bool
	}{
		{"fast link", 0, false},
		// 500 kB/s: slow enough for the slower level under the race
		// detector too, where zstd costs 70 times as much.
		{"500 kB/s", 2 * time.Microsecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &slowWriter{h: http.Header{}, perByte: tt.perByte}
			// The meta event readStream wants first; the blocks follow.
			w.sent.Write(chunker.AppendEvent(nil, "", chunker.EventMeta, chunker.Meta{Size: int64(len(data)), BlockSize: chunker.DefaultBlockSize, ETag: "t", End: int64(len(data))}))
			st := &stream{s: s, w: w, rc: http.NewResponseController(w), enc: chunker.NewEncoders(chunker.Zstd, false),
				policy: newCodecPolicy([]string{chunker.Zstd}), byEncoding: map[string]int64{}}
			bs := chunker.DefaultBlockSize
			for off := 0; off < len(data); off += bs {
				raw := data[off:min(off+bs, len(data))]
				if err := st.block(int64(off), raw, chunker.Hash(raw), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("zstd cost %.1f ns/B, ratio %.3f, link %.1f ns per wire byte, credit %v", st.policy.costNs(chunker.Zstd), st.policy.stats[0].ratio, st.policy.writeNs(), st.effort.credit)
			if got := st.better > 0; got != tt.slower {
				t.Errorf("%d of %d blocks at zstd's slower level, want some: %v", st.better, st.blocks, tt.slower)
			}
			if got := readStream(t, &w.sent).data; !bytes.Equal(got, data) {
				t.Errorf("the blocks decode to %d bytes that differ from the %d of the file", len(got), len(data))
			}
		})
	}
}
