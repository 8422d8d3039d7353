package chunker

import (
	"bytes"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	b64 "github.com/emmansun/base64"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// base64 is the hot spot of the stream. Measured on the 2-core CI machine
// (AVX-512) over 256 KiB blocks: encoding/base64 encodes 1.36 GB/s and
// decodes 1.31 GB/s; segmentio/asm 19.9 and 15.0 GB/s; emmansun/base64 23.1
// and 18.4 GB/s. Both SIMD packages emit the standard alphabet with padding
// and fall back to portable code elsewhere; we use the faster one.
var stdEncoding = b64.StdEncoding

// Encoder turns raw blocks into block events. It reuses its buffers, so a
// stream allocates nothing per block; it is not safe for concurrent use.
type Encoder struct {
	encoding string // the strong codec: Zstd, Gzip or Identity
	s2       bool   // S2 may be used too
	zw       *zstd.Encoder
	effort   bool // compress zstd blocks at the slower level (SetEffort)
	gw       *gzip.Writer
	comp     bytes.Buffer
	s2buf    []byte
	frame    []byte

	// Of the latest Frame that tried to compress: how long compressing took
	// and how many bytes it produced (kept or not).
	lastTook   time.Duration
	lastLen    int
	lastEnc    string // the encoding of the latest frame
	lastSlower bool   // the latest frame's zstd block was made at the slower level
}

// slowerZstd holds the encoders of zstd's slower level, shared by all
// Encoders: about 6 MiB each (the fastest level's, 3 MiB, is each
// Encoder's own), so there are at most as many as blocks can be
// compressed at once, one per CPU. An Encoder that finds none free makes
// its block at the fastest level.
var slowerZstd = struct {
	free chan *zstd.Encoder
	made atomic.Int32
}{free: make(chan *zstd.Encoder, runtime.GOMAXPROCS(0))}

// takeSlowerZstd returns a free slower encoder, or nil if all are in use.
func takeSlowerZstd() *zstd.Encoder {
	select {
	case zw := <-slowerZstd.free:
		return zw
	default:
	}
	if slowerZstd.made.Add(1) > int32(cap(slowerZstd.free)) {
		slowerZstd.made.Add(-1)
		return nil
	}
	return newZstd(zstd.SpeedBetterCompression)
}

// NewEncoder returns an Encoder that tries the given encoding (Identity,
// Zstd, Gzip or S2) on each block and keeps it only where it makes the block
// smaller. An unknown encoding means Identity.
func NewEncoder(encoding string) *Encoder {
	if encoding == S2 {
		return NewEncoders(Identity, true)
	}
	return NewEncoders(encoding, false)
}

// NewEncoders returns an Encoder that can compress with the strong codec
// (Zstd, Gzip or Identity for none) and, if s2 is true, with S2; FrameWith
// says which to try on each block.
func NewEncoders(strong string, s2 bool) *Encoder {
	e := &Encoder{encoding: Identity, s2: s2}
	switch strong {
	case Zstd:
		e.encoding, e.zw = Zstd, newZstd(zstd.SpeedFastest)
	case Gzip:
		gw, err := gzip.NewWriterLevel(&e.comp, gzip.BestSpeed)
		if err != nil {
			panic("chunker: gzip level: " + err.Error())
		}
		e.encoding, e.gw = Gzip, gw
	}
	return e
}

// SetEffort makes the zstd blocks of the frames that follow smaller and
// slower to make (zstd's "better" level instead of its fastest; they
// decompress as fast), where the link leaves the sender time to spare, as
// long as one of the few encoders of that level is free (LastSlower says
// whether it was). On log lines in 256 KiB blocks, measured on the
// machine of docs/PERFORMANCE.md: 0.130 of the size at 5.2 ns per byte
// against 0.145 at 2.4.
func (e *Encoder) SetEffort(more bool) { e.effort = more }

// LastSlower reports whether the latest frame's zstd block was made at the
// slower level of SetEffort.
func (e *Encoder) LastSlower() bool { return e.lastSlower }

// newZstd returns a zstd encoder of the given level for blocks: one
// goroutine, so that a stream does not take a core from the others; a
// 1 MiB window (a 16 MiB one, the largest block, makes every encoder hold
// 32 MiB of history; blocks up to the default size compress the same
// either way); no checksum (each block has its xxh3-64).
func newZstd(level zstd.EncoderLevel) *zstd.Encoder {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(false))
	if err != nil {
		panic("chunker: zstd options: " + err.Error()) // only invalid options fail
	}
	return zw
}

// Encoding returns the strong encoding the Encoder tries, or S2 for an
// Encoder of S2 alone.
func (e *Encoder) Encoding() string {
	if e.encoding == Identity && e.s2 {
		return S2
	}
	return e.encoding
}

// Codecs returns the encodings the Encoder can compress with, the cheapest
// first.
func (e *Encoder) Codecs() []string {
	var cs []string
	if e.s2 {
		cs = append(cs, S2)
	}
	if e.encoding != Identity {
		cs = append(cs, e.encoding)
	}
	return cs
}

// Frame returns the complete block event for raw, the block at off whose
// xxh3-64 is hash, compressed if that makes it smaller. The slice is valid
// until the next call.
func (e *Encoder) Frame(off int64, raw []byte, hash uint64) []byte {
	return e.FrameWith(off, raw, hash, e.Encoding())
}

// FrameWith is Frame, trying the given codec, one of Codecs; Identity, or
// any other, sends the block as it is.
func (e *Encoder) FrameWith(off int64, raw []byte, hash uint64, codec string) []byte {
	payload, enc := raw, Identity
	e.lastSlower = false
	if codec != Identity && (codec == e.encoding || codec == S2 && e.s2) {
		start := time.Now()
		payload, enc = e.compress(raw, codec)
		e.lastTook = time.Since(start)
	}
	e.lastEnc = enc
	f := e.frame[:0]
	f = append(f, "id: "...)
	f = strconv.AppendInt(f, off, 10)
	f = append(f, frameOffset...)
	f = strconv.AppendInt(f, off, 10)
	f = append(f, frameLength...)
	f = strconv.AppendInt(f, int64(len(raw)), 10)
	f = append(f, frameHash...)
	f = appendHash(f, hash)
	f = append(f, frameEncoding...)
	f = append(f, enc...)
	f = append(f, frameData...)
	n := len(f)
	f = grow(f, stdEncoding.EncodedLen(len(payload)))
	stdEncoding.Encode(f[n:], payload)
	f = append(f, "\"}\n\n"...)
	e.frame = f
	return f
}

// The pieces of a block event around its values, spelled from the
// protocol's names (constant expressions: nothing is built at run time).
const (
	frameOffset   = "\nevent: " + EventBlock + "\ndata: {\"" + FieldOffset + "\":"
	frameLength   = ",\"" + FieldLength + "\":"
	frameHash     = ",\"" + FieldHash + "\":\""
	frameEncoding = "\",\"" + FieldEncoding + "\":\""
	frameData     = "\",\"" + FieldData + "\":\""
)

// LastEncoding returns the encoding of the latest frame.
func (e *Encoder) LastEncoding() string { return e.lastEnc }

// LastCompression reports, for the latest Frame that tried to compress,
// how long compressing took and the compressed size, kept or not.
func (e *Encoder) LastCompression() (time.Duration, int) { return e.lastTook, e.lastLen }

// compress returns the bytes to send and their encoding: the compressed
// block when that is smaller, else raw as identity.
func (e *Encoder) compress(raw []byte, codec string) ([]byte, string) {
	switch {
	case codec == S2:
		// MaxEncodedLen is a little more than len(raw); s2 gives up early on
		// incompressible data (31 GB/s on random bytes, measured).
		n := s2.MaxEncodedLen(len(raw))
		if n < 0 {
			e.lastLen = len(raw)
			return raw, Identity
		}
		if len(e.s2buf) < n {
			e.s2buf = make([]byte, n) // Encode allocates unless dst has room for the worst case
		}
		out := s2.Encode(e.s2buf, raw)
		if e.lastLen = len(out); len(out) < len(raw) {
			return out, S2
		}
	case e.zw != nil:
		zw := e.zw
		if e.effort {
			if slower := takeSlowerZstd(); slower != nil {
				defer func() { slowerZstd.free <- slower }()
				zw, e.lastSlower = slower, true
			}
		}
		out := zw.EncodeAll(raw, e.comp.Bytes()[:0])
		e.comp = *bytes.NewBuffer(out) // keep the grown buffer for the next block
		if e.lastLen = len(out); len(out) < len(raw) {
			return out, Zstd
		}
	case e.gw != nil:
		e.comp.Reset()
		e.gw.Reset(&e.comp)
		ok := false
		if _, err := e.gw.Write(raw); err == nil && e.gw.Close() == nil {
			ok = true
		}
		if e.lastLen = e.comp.Len(); ok && e.comp.Len() < len(raw) {
			return e.comp.Bytes(), Gzip
		}
	default:
		e.lastLen = len(raw)
	}
	return raw, Identity
}

// grow extends b by n bytes, reallocating only when its capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
