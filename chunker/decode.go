package chunker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Frame is the parsed payload of a block event. Data is the base64 text and
// aliases the parsed input.
type Frame struct {
	Offset   int64
	Length   int
	Hash     uint64
	Encoding string
	Data     []byte
}

// ParseFrame parses the JSON payload of a block event.
//
// It is hand-written because the payload is one JSON object holding a base64
// string of several hundred KiB, and encoding/json unmarshals such a string
// at about 100 MB/s; this scanner finds it with one IndexByte. Fields may come
// in any order, unknown fields are skipped, and a data string with escapes
// (legal JSON, though no Ferry server writes one) falls back to encoding/json.
func ParseFrame(p []byte) (Frame, error) {
	var f Frame
	s := scanner{p: p}
	var seen uint8
	if !s.consume('{') {
		return f, s.fail("want '{'")
	}
	if s.consume('}') {
		return f, fmt.Errorf("%w: empty object", ErrFrame)
	}
	for {
		key, ok := s.rawString()
		if !ok || !s.consume(':') {
			return f, s.fail("want a key")
		}
		switch string(key) {
		case FieldOffset:
			n, ok := s.uint()
			if !ok {
				return f, s.fail("offset is not a non-negative integer")
			}
			f.Offset, seen = n, seen|1
		case FieldLength:
			n, ok := s.uint()
			if !ok || n > MaxBlockSize {
				return f, s.fail("length is not an integer in range")
			}
			f.Length, seen = int(n), seen|2
		case FieldHash:
			v, ok := s.rawString()
			if !ok {
				return f, s.fail("hash is not a string")
			}
			h, err := ParseHash(string(v))
			if err != nil {
				return f, err
			}
			f.Hash, seen = h, seen|4
		case FieldEncoding:
			v, ok := s.rawString()
			if !ok {
				return f, s.fail("encoding is not a string")
			}
			switch string(v) { // constants, so the hot path allocates nothing
			case Identity:
				f.Encoding = Identity
			case Zstd:
				f.Encoding = Zstd
			case Gzip:
				f.Encoding = Gzip
			case S2:
				f.Encoding = S2
			default:
				return f, fmt.Errorf("%w: %q", ErrEncoding, v)
			}
			seen |= 8
		case FieldData:
			v, ok := s.rawString()
			if !ok {
				return f, s.fail("data is not a string")
			}
			f.Data, seen = v, seen|16
		default:
			if !s.skipValue() {
				return f, s.fail("bad value")
			}
		}
		if s.consume(',') {
			continue
		}
		if !s.consume('}') {
			return f, s.fail("want ',' or '}'")
		}
		break
	}
	s.space()
	if s.i != len(s.p) {
		return f, s.fail("trailing bytes")
	}
	if seen&(1|2|4|16) != 1|2|4|16 {
		return f, fmt.Errorf("%w: missing offset, length, hash or data", ErrFrame)
	}
	if seen&8 == 0 {
		f.Encoding = Identity
	}
	return f, nil
}

type scanner struct {
	p []byte
	i int
}

func (s *scanner) fail(why string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrFrame, why, s.i)
}

func (s *scanner) space() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.p) && s.p[s.i] == c {
		s.i++
		return true
	}
	return false
}

// rawString returns the contents of a JSON string. A string with escapes is
// decoded by encoding/json into a new slice.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	end := bytes.IndexByte(s.p[start:], '"')
	if end < 0 {
		return nil, false
	}
	v := s.p[start : start+end]
	if bytes.IndexByte(v, '\\') < 0 {
		s.i = start + end + 1
		return v, true
	}
	// Escapes: find the real closing quote, then let encoding/json decode.
	i := start
	for i < len(s.p) && s.p[i] != '"' {
		if s.p[i] == '\\' {
			i++
		}
		i++
	}
	if i >= len(s.p) {
		return nil, false
	}
	var out string
	if err := json.Unmarshal(s.p[start-1:i+1], &out); err != nil {
		return nil, false
	}
	s.i = i + 1
	return []byte(out), true
}

func (s *scanner) uint() (int64, bool) {
	s.space()
	start := s.i
	for s.i < len(s.p) && s.p[s.i] >= '0' && s.p[s.i] <= '9' {
		s.i++
	}
	if s.i == start || s.i-start > 1 && s.p[start] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(s.p[start:s.i]), 10, 64)
	return n, err == nil
}

// skipValue skips one JSON value of an unknown field.
func (s *scanner) skipValue() bool {
	s.space()
	d := json.NewDecoder(bytes.NewReader(s.p[s.i:]))
	var v json.RawMessage
	if err := d.Decode(&v); err != nil {
		return false
	}
	s.i += int(d.InputOffset())
	return true
}

// Decoder turns block events back into verified raw blocks. It reuses its
// buffers; it is not safe for concurrent use.
type Decoder struct {
	zd   *zstd.Decoder
	gr   *gzip.Reader
	b64  []byte
	raw  []byte
	gbuf bytes.Reader
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{} }

// Decode base64-decodes, decompresses and verifies f. It returns the raw
// block, valid until the next call, or an error wrapping ErrCorrupt,
// ErrEncoding or ErrChecksum; corrupt data is never returned.
func (d *Decoder) Decode(f Frame) ([]byte, error) {
	raw, _, err := d.DecodeInto(nil, f)
	return raw, err
}

// DecodeInto is Decode, writing the block into dst when dst has room for
// it (a capacity of at least Length+8), else into the Decoder's buffer, and
// reports which: inDst is true when raw shares dst's memory. It saves a
// copy for callers that hand blocks on to another goroutine.
func (d *Decoder) DecodeInto(dst []byte, f Frame) (raw []byte, inDst bool, err error) {
	raw, err = d.decodeInto(dst, f)
	if err != nil {
		return nil, false, err
	}
	identity := f.Encoding == Identity || f.Encoding == ""
	// The two ways decodeInto uses dst: base64 straight into it, or the
	// decompressor's output buffer (rawBuf).
	inDst = identity && cap(dst) >= stdEncoding.DecodedLen(len(f.Data)) || !identity && cap(dst) >= f.Length+1
	return raw, inDst, nil
}

func (d *Decoder) decodeInto(dst []byte, f Frame) ([]byte, error) {
	if f.Length < 0 || f.Length > MaxBlockSize {
		return nil, fmt.Errorf("%w: length %d", ErrCorrupt, f.Length)
	}
	n := stdEncoding.DecodedLen(len(f.Data))
	if n > 2*MaxBlockSize {
		return nil, fmt.Errorf("%w: payload of %d bytes", ErrCorrupt, n)
	}
	identity := f.Encoding == Identity || f.Encoding == ""
	buf := dst
	if !identity || cap(dst) < n {
		if cap(d.b64) < n {
			d.b64 = make([]byte, n)
		}
		buf = d.b64
	}
	n, err := stdEncoding.Decode(buf[:n], f.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrCorrupt, err)
	}
	payload := buf[:n]
	var raw []byte
	switch f.Encoding {
	case Identity, "":
		raw = payload
	case Zstd:
		raw, err = d.unzstd(payload, f.Length, dst)
	case Gzip:
		raw, err = d.gunzip(payload, f.Length, dst)
	case S2:
		raw, err = d.uns2(payload, f.Length, dst)
	default:
		return nil, fmt.Errorf("%w: %q", ErrEncoding, f.Encoding)
	}
	if err != nil {
		return nil, err
	}
	if len(raw) != f.Length {
		return nil, fmt.Errorf("%w: block at %d has %d bytes, want %d", ErrCorrupt, f.Offset, len(raw), f.Length)
	}
	if got := Hash(raw); got != f.Hash {
		return nil, fmt.Errorf("%w: block at %d hashes to %s, want %s", ErrChecksum, f.Offset, FormatHash(got), FormatHash(f.Hash))
	}
	return raw, nil
}

// rawBuf returns an empty buffer with room for n+1 bytes (one more than a
// block, to notice a payload that decompresses to more): dst if it has it.
func (d *Decoder) rawBuf(n int, dst []byte) []byte {
	if cap(dst) >= n+1 {
		return dst[:0]
	}
	if cap(d.raw) < n+1 {
		d.raw = make([]byte, n+1)
	}
	return d.raw[:0]
}

func (d *Decoder) uns2(p []byte, length int, dst []byte) ([]byte, error) {
	// The block's header gives its decoded size: checked before any
	// allocation, so a hostile frame cannot make us allocate more.
	n, err := s2.DecodedLen(p)
	if err != nil {
		return nil, fmt.Errorf("%w: s2: %w", ErrCorrupt, err)
	}
	if n != length {
		return nil, fmt.Errorf("%w: s2 block of %d bytes, want %d", ErrCorrupt, n, length)
	}
	raw, err := s2.Decode(d.rawBuf(length, dst)[:length], p)
	if err != nil {
		return nil, fmt.Errorf("%w: s2: %w", ErrCorrupt, err)
	}
	return raw, nil
}

func (d *Decoder) unzstd(p []byte, length int, dst []byte) ([]byte, error) {
	if d.zd == nil {
		zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxBlockSize+1), zstd.WithDecoderMaxWindow(MaxBlockSize), zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			return nil, fmt.Errorf("chunker: zstd decoder: %w", err)
		}
		d.zd = zd
	}
	// With WithDecodeAllCapLimit the output may not outgrow the buffer's
	// capacity (length+1), so a hostile frame cannot make us allocate more.
	raw, err := d.zd.DecodeAll(p, d.rawBuf(length, dst))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
	}
	return raw, nil
}

func (d *Decoder) gunzip(p []byte, length int, dst []byte) ([]byte, error) {
	d.gbuf.Reset(p)
	var err error
	if d.gr == nil {
		d.gr, err = gzip.NewReader(&d.gbuf)
	} else {
		err = d.gr.Reset(&d.gbuf)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrCorrupt, err)
	}
	buf := d.rawBuf(length, dst)[:length+1]
	n, err := io.ReadFull(d.gr, buf)
	switch err {
	case io.ErrUnexpectedEOF, io.EOF:
		// the stream ended before length+1 bytes: the expected case
	case nil:
		return nil, fmt.Errorf("%w: gzip block longer than %d bytes", ErrCorrupt, length)
	default:
		return nil, fmt.Errorf("%w: gzip: %w", ErrCorrupt, err)
	}
	return buf[:n], nil
}
