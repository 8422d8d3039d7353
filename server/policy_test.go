package server

import (
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
)

func TestCodecPolicy(t *testing.T) {
	const raw = 256 << 10
	// Measured on the machine of docs/PERFORMANCE.md over log lines: s2
	// 0.54 ns per byte to a quarter of the size, zstd's fastest level 2.3 ns
	// to a seventh.
	s2 := codecModel{chunker.S2, 0.23, 0.54}
	zstd := codecModel{chunker.Zstd, 0.14, 2.3}
	tests := []struct {
		name    string
		codecs  []codecModel
		writeNs float64 // writing, ns per wire byte
		want    string  // the codec of most blocks
	}{
		{"fast link, zstd only", []codecModel{zstd}, 0.3, chunker.Identity},
		{"medium link, s2 and zstd", []codecModel{s2, zstd}, 2, chunker.S2},
		// On loopback s2 took 1.0-1.3 ns per byte, sharing two cores with
		// the client, and the writes 0.4-0.9 ns per byte.
		{"client-bound loopback, s2 and zstd", []codecModel{{chunker.S2, 0.23, 1.1}, zstd}, 0.9, chunker.Identity},
		{"very fast link, s2 and zstd", []codecModel{s2, zstd}, 0.3, chunker.Identity},
		{"slow link, s2 and zstd", []codecModel{s2, zstd}, 20, chunker.Zstd},
		{"slow link, zstd only", []codecModel{zstd}, 20, chunker.Zstd},
		// The office link (50 MB/s) of docs/PERFORMANCE.md, with zstd's cost
		// inside the stream, sharing two cores with the client: zstd is
		// slower than the link but sooner than S2, which waits on it.
		{"50 MB/s link, zstd slower than the link", []codecModel{{chunker.S2, 0.233, 1.05}, {chunker.Zstd, 0.145, 4.45}}, 21, chunker.Zstd},
		{"slow link, incompressible", []codecModel{{chunker.S2, 1.0, 0.03}, {chunker.Zstd, 1.0, 3}}, 20, chunker.Identity},
		{"slow link, barely compressible: 5 % less is 5 % sooner", []codecModel{{chunker.Zstd, 0.95, 3}}, 20, chunker.Zstd},
		{"medium link, half size", []codecModel{{chunker.Zstd, 0.5, 3}}, 8, chunker.Zstd},
		{"no codec", nil, 20, chunker.Identity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for _, c := range tt.codecs {
				names = append(names, c.name)
			}
			p := newCodecPolicy(names)
			tried := map[string]int{}
			for range 160 {
				codec := p.choose()
				tried[codec]++
				for _, c := range tt.codecs {
					if c.name == codec {
						p.compressed(codec, raw, int(c.ratio*raw), time.Duration(c.costNs*raw))
					}
				}
				p.wrote(raw*4/3, time.Duration(tt.writeNs*raw*4/3))
			}
			if tried[tt.want] <= 80 {
				t.Errorf("blocks per codec %v, want most %s", tried, tt.want)
			}
			for _, c := range tt.codecs {
				switch {
				case tried[c.name] < 2:
					t.Errorf("tried %s on %d blocks, want it measured at the start", c.name, tried[c.name])
				case c.name != tt.want && tried[c.name] > 6:
					t.Errorf("tried %s, which loses to %s here, on %d blocks; want probes ever rarer", c.name, tt.want, tried[c.name])
				}
			}

		})
	}
}

// TestCodecPolicySpike: a codec in use whose cost spikes for a block (the
// machine was busy) loses the next blocks to another, and has them back
// at its next probe, within probeEvery blocks.
func TestCodecPolicySpike(t *testing.T) {
	const raw = 256 << 10
	p := newCodecPolicy([]string{chunker.S2, chunker.Zstd})
	costs := map[string]float64{chunker.S2: 1.05, chunker.Zstd: 3.5}
	ratios := map[string]float64{chunker.S2: 0.233, chunker.Zstd: 0.145}
	block := func(spike bool) string {
		codec := p.choose()
		if codec != chunker.Identity {
			cost := costs[codec]
			if spike && codec == chunker.Zstd {
				cost = 30
			}
			p.compressed(codec, raw, int(ratios[codec]*raw), time.Duration(cost*raw))
		}
		p.wrote(raw/4, time.Duration(21*raw/4)) // 50 MB/s
		return codec
	}
	for range 100 {
		block(false)
	}
	if c := block(true); c != chunker.Zstd {
		t.Fatalf("block in %s, want zstd on the office link", c)
	}
	if c := block(false); c != chunker.S2 {
		t.Fatalf("block after the slow one in %s, want s2", c)
	}
	for n := range probeEvery + 2 {
		if block(false) == chunker.Zstd {
			t.Logf("zstd again after %d blocks", n)
			return
		}
	}
	t.Errorf("no zstd within %d blocks of one slow block", probeEvery+2)
}

// codecModel is how a codec behaves on the test's data.
type codecModel struct {
	name   string
	ratio  float64 // compressed ÷ raw
	costNs float64 // compressing, ns per raw byte
}

// TestCodecPolicyFollowsTheData: probes of data that does not compress grow
// rare, and compression resumes within maxProbeEvery blocks once the data
// compresses.
func TestCodecPolicyFollowsTheData(t *testing.T) {
	const raw = 256 << 10
	p := newCodecPolicy([]string{chunker.S2, chunker.Zstd})
	ratio := 1.0
	block := func() string {
		codec := p.choose()
		if codec != chunker.Identity {
			p.compressed(codec, raw, int(ratio*raw), time.Duration(raw)) // 1 ns per byte
		}
		p.wrote(raw*4/3, time.Duration(20*raw*4/3)) // a 50 MB/s link
		return codec
	}
	tried := 0
	for range 2000 {
		if block() != chunker.Identity {
			tried++
		}
	}
	if tried > 2*(2000/maxProbeEvery+6) {
		t.Errorf("tried to compress %d of 2000 incompressible blocks", tried)
	}
	ratio = 0.2
	for range maxProbeEvery + 2 {
		if block() == chunker.Zstd {
			return
		}
	}
	t.Errorf("no zstd within %d blocks of the data turning compressible", maxProbeEvery+2)
}

// The kernel's delivery rate, read while the send queue is full, is the
// link's time per byte even while the writes, absorbed by a socket buffer
// of megabytes, return at once; read while the queue is not full (our own
// pace, compressing on loopback, say), it fades and the write times decide.
func TestCodecPolicyLinkRate(t *testing.T) {
	zstd := codecModel{chunker.Zstd, 0.14, 2.3}
	p := newCodecPolicy([]string{chunker.Zstd})
	for range 8 {
		p.compressed(chunker.Zstd, 256<<10, 36700, 602931*time.Nanosecond) // a seventh, 2.3 ns per byte
		p.wrote(100<<10, 30720*time.Nanosecond)                            // the writes: 0.3 ns per byte
	}
	if got := p.choose(); got != chunker.Identity {
		t.Fatalf("fast writes, no link rate: %s, want identity", got)
	}
	for range 4 {
		p.linked(50e6, true) // a full queue draining at 50 MB/s: 20 ns per byte
	}
	if w := p.writeNs(); w < 15 || w > 25 {
		t.Errorf("writeNs %.1f after full-queue samples of 50 MB/s, want about 20", w)
	}
	if got := p.choose(); got != zstd.name {
		t.Errorf("a 50 MB/s link behind a socket buffer: %s, want zstd", got)
	}
	for range 30 {
		p.linked(50e6, false) // our own pace, not the link's
	}
	if w := p.writeNs(); w > 1 {
		t.Errorf("writeNs %.1f after samples with the queue not full, want the write times' 0.3", w)
	}
}

// TestCodecPolicyOutpaces: the slower zstd level is allowed where the
// link's time for zstd's output is longer than the slower level takes.
func TestCodecPolicyOutpaces(t *testing.T) {
	const raw = 256 << 10
	for _, tt := range []struct {
		name    string
		writeNs float64 // ns per wire byte
		want    bool
	}{
		{"office, 50 MB/s: the fastest level just keeps the link busy", 21, false},
		{"mobile, 20 Mbit/s", 400, true},
		{"loopback", 0.5, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newCodecPolicy([]string{chunker.Zstd})
			wire := raw * 145 / 1000 * 4 / 3
			for range 4 {
				p.choose()
				p.compressed(chunker.Zstd, raw, raw*145/1000, time.Duration(629146)) // 2.4 ns per byte
				p.wrote(wire, time.Duration(tt.writeNs*float64(wire)))
			}
			if got := p.outpaces(chunker.Zstd, betterCostFactor); got != tt.want {
				t.Errorf("outpaces = %v, want %v", got, tt.want)
			}
		})
	}
	if p := newCodecPolicy([]string{chunker.S2}); p.outpaces(chunker.Zstd, 1) {
		t.Error("outpaces for a codec the stream does not have")
	}
}
