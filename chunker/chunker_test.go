package chunker

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func compressible(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString("2026-11-23T10:00:00Z INFO ferry: served block to 127.0.0.1 ok\n")
	}
	return b.Bytes()[:n]
}

func TestCountAndSpan(t *testing.T) {
	tests := []struct {
		size    int64
		bs      int
		count   int64
		lastOff int64
		lastLen int
	}{
		{0, 1024, 0, 0, 0},
		{1, 1024, 1, 0, 1},
		{1024, 1024, 1, 0, 1024},
		{1025, 1024, 2, 1024, 1},
		{10 * 1024, 1024, 10, 9 * 1024, 1024},
	}
	for _, tt := range tests {
		if got := Count(tt.size, tt.bs); got != tt.count {
			t.Errorf("Count(%d, %d) = %d, want %d", tt.size, tt.bs, got, tt.count)
		}
		if tt.count == 0 {
			continue
		}
		off, n := Span(tt.size, tt.bs, tt.count-1)
		if off != tt.lastOff || n != tt.lastLen {
			t.Errorf("Span(%d, %d, last) = %d, %d, want %d, %d", tt.size, tt.bs, off, n, tt.lastOff, tt.lastLen)
		}
	}
}

func TestChunkerReadsEveryBlock(t *testing.T) {
	data := randomBytes(1, 5*1024+7)
	c, err := New(bytes.NewReader(data), int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := range c.Count() {
		off, b, err := c.Block(i)
		if err != nil {
			t.Fatalf("Block(%d): %v", i, err)
		}
		if off != i*1024 {
			t.Errorf("Block(%d) offset = %d, want %d", i, off, i*1024)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Error("blocks do not reassemble the file")
	}
	if _, _, err := c.Block(c.Count()); err == nil {
		t.Error("Block(Count()) succeeded, want an error")
	}
}

func TestChunkerShrunkFile(t *testing.T) {
	c, err := New(bytes.NewReader(make([]byte, 1500)), 2048, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Block(1); err == nil {
		t.Error("reading past a shrunk file succeeded, want an error")
	}
}

func TestCheckBlockSize(t *testing.T) {
	for _, n := range []int{0, -1, MinBlockSize - 1, MaxBlockSize + 1} {
		if err := CheckBlockSize(n); !errors.Is(err, ErrBlockSize) {
			t.Errorf("CheckBlockSize(%d) = %v, want ErrBlockSize", n, err)
		}
	}
	for _, n := range []int{MinBlockSize, DefaultBlockSize, MaxBlockSize} {
		if err := CheckBlockSize(n); err != nil {
			t.Errorf("CheckBlockSize(%d) = %v, want nil", n, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"random":       randomBytes(2, DefaultBlockSize),
		"compressible": compressible(DefaultBlockSize),
		"short":        []byte("x"),
	}
	for _, enc := range []string{Identity, Zstd, Gzip, S2} {
		for name, raw := range inputs {
			t.Run(enc+"/"+name, func(t *testing.T) {
				e := NewEncoder(enc)
				frame := e.Frame(4096, raw, Hash(raw))
				data := eventData(t, frame)
				f, err := ParseFrame(data)
				if err != nil {
					t.Fatalf("ParseFrame: %v", err)
				}
				wantEnc := Identity
				if name == "compressible" {
					wantEnc = enc
				}
				if f.Offset != 4096 || f.Length != len(raw) || f.Encoding != wantEnc {
					t.Errorf("frame = offset %d length %d encoding %s, want 4096 %d %s", f.Offset, f.Length, f.Encoding, len(raw), wantEnc)
				}
				got, err := NewDecoder().Decode(f)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(got, raw) {
					t.Error("decoded block differs from the original")
				}
				dst := make([]byte, 0, len(raw)+8)
				got, inDst, err := NewDecoder().DecodeInto(dst, f)
				if err != nil || !bytes.Equal(got, raw) {
					t.Fatalf("DecodeInto: %v, equal=%v", err, bytes.Equal(got, raw))
				}
				if &got[:1][0] != &dst[:1][0] || !inDst {
					t.Errorf("DecodeInto did not decode into dst, or did not say so (inDst=%v)", inDst)
				}
				small := make([]byte, 0, len(raw)/2)
				got, inDst, err = NewDecoder().DecodeInto(small, f)
				if err != nil || !bytes.Equal(got, raw) || inDst {
					t.Errorf("DecodeInto into a buffer too small: %v, equal=%v, inDst=%v; want the block, elsewhere", err, bytes.Equal(got, raw), inDst)
				}
			})
		}
	}
}

// eventData checks the framing of one block event and returns its data field.
func eventData(t *testing.T, frame []byte) []byte {
	t.Helper()
	s := string(frame)
	if !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("frame does not end with a blank line: %q", s[max(0, len(s)-10):])
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "id: ") || lines[1] != "event: block" || !strings.HasPrefix(lines[2], "data: ") {
		t.Fatalf("frame lines = %.80q, want id, event, data", lines)
	}
	return []byte(strings.TrimPrefix(lines[2], "data: "))
}

func TestDecodeRejectsCorruption(t *testing.T) {
	raw := compressible(8192)
	for _, enc := range []string{Identity, Zstd, Gzip, S2} {
		t.Run(enc, func(t *testing.T) {
			frame := NewEncoder(enc).Frame(0, raw, Hash(raw))
			data := eventData(t, frame)
			good, err := ParseFrame(data)
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string]func(f *Frame){
				"hash":     func(f *Frame) { f.Hash ^= 1 },
				"length":   func(f *Frame) { f.Length-- },
				"base64":   func(f *Frame) { f.Data = append([]byte("!"), f.Data[1:]...) },
				"bitflip":  func(f *Frame) { f.Data = flipBase64(f.Data, len(f.Data)/2) },
				"encoding": func(f *Frame) { f.Encoding = "br" },
				"huge":     func(f *Frame) { f.Length = MaxBlockSize + 1 },
			}
			for name, mutate := range cases {
				f := good
				f.Data = bytes.Clone(good.Data)
				mutate(&f)
				got, err := NewDecoder().Decode(f)
				if err == nil {
					t.Errorf("%s: Decode returned %d bytes and no error", name, len(got))
				}
				if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrEncoding) {
					t.Errorf("%s: Decode error %v is not a chunker sentinel", name, err)
				}
			}
		})
	}
}

// flipBase64 changes the base64 digit at i to another valid digit.
func flipBase64(b []byte, i int) []byte {
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return b
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Frame
		err  bool
	}{
		{"canonical", `{"offset":1024,"length":3,"hash":"00000000000000ff","encoding":"identity","data":"YWJj"}`,
			Frame{Offset: 1024, Length: 3, Hash: 255, Encoding: Identity, Data: []byte("YWJj")}, false},
		{"reordered with spaces and extras", ` { "data" : "YWJj", "x": {"a":[1,"}"]}, "hash":"00000000000000FF","length":3,"offset":0 } `,
			Frame{Offset: 0, Length: 3, Hash: 255, Encoding: Identity, Data: []byte("YWJj")}, false},
		{"escaped slash in data", `{"offset":0,"length":3,"hash":"00000000000000ff","data":"YW\/j"}`,
			Frame{Length: 3, Hash: 255, Encoding: Identity, Data: []byte("YW/j")}, false},
		{"missing data", `{"offset":0,"length":3,"hash":"00000000000000ff"}`, Frame{}, true},
		{"negative offset", `{"offset":-1,"length":3,"hash":"00000000000000ff","data":""}`, Frame{}, true},
		{"offset overflows", `{"offset":99999999999999999999,"length":3,"hash":"00000000000000ff","data":""}`, Frame{}, true},
		{"leading zero", `{"offset":01,"length":3,"hash":"00000000000000ff","data":""}`, Frame{}, true},
		{"short hash", `{"offset":0,"length":3,"hash":"ff","data":""}`, Frame{}, true},
		{"unknown encoding", `{"offset":0,"length":3,"hash":"00000000000000ff","encoding":"br","data":""}`, Frame{}, true},
		{"trailing garbage", `{"offset":0,"length":3,"hash":"00000000000000ff","data":""}x`, Frame{}, true},
		{"unterminated", `{"offset":0,"length":3,"hash":"00000000000000ff","data":"abc`, Frame{}, true},
		{"not an object", `[]`, Frame{}, true},
		{"empty", ``, Frame{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrame([]byte(tt.in))
			if tt.err {
				if err == nil {
					t.Errorf("ParseFrame(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFrame(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFrame(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		in     string
		strong string
		s2     bool
	}{
		{"", Identity, false},
		{"br", Identity, false},
		{"gzip", Gzip, false},
		{"br, GZIP", Gzip, false},
		{"gzip,zstd", Zstd, false},
		{"zstd,gzip", Zstd, false},
		{"zstd", Zstd, false},
		{"identity,gzip", Gzip, false},
		{"s2", Identity, true},
		{"S2 , gzip", Gzip, true},
		{"s2,zstd,gzip", Zstd, true},
	}
	for _, tt := range tests {
		if strong, s2 := Negotiate(tt.in); strong != tt.strong || s2 != tt.s2 {
			t.Errorf("Negotiate(%q) = %q, %v; want %q, %v", tt.in, strong, s2, tt.strong, tt.s2)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	raw := compressible(3000)
	for _, enc := range []string{Identity, Zstd, Gzip, S2} {
		frame := NewEncoder(enc).Frame(0, raw, Hash(raw))
		f.Add(bytes.TrimSuffix(bytes.SplitN(frame, []byte("data: "), 2)[1], []byte("\n\n")))
	}
	f.Add([]byte(`{"offset":0,"length":3,"hash":"00000000000000ff","data":"YW\/j"}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, err := ParseFrame(p)
		if err != nil {
			return
		}
		raw, err := NewDecoder().Decode(fr)
		if err != nil {
			return
		}
		// Whatever decodes must be exactly what the frame promised.
		if len(raw) != fr.Length || Hash(raw) != fr.Hash {
			t.Fatalf("Decode returned %d bytes hashing to %x for a frame of %d bytes and hash %x", len(raw), Hash(raw), fr.Length, fr.Hash)
		}
	})
}

// logLines returns n bytes of varied log lines, which the slower zstd
// level compresses better than the fastest.
func logLines(n int) []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(7, 7))
	levels := []string{"INFO", "WARN", "DEBUG"}
	for b.Len() < n {
		fmt.Fprintf(&b, "2026-11-23T10:%02d:%02d.%06dZ %s ferry: served block %d of file-%d.bin to 10.0.%d.%d in %d µs\n",
			r.IntN(60), r.IntN(60), r.IntN(1000000), levels[r.IntN(3)], r.IntN(4096), r.IntN(50), r.IntN(256), r.IntN(256), r.IntN(90000))
	}
	return b.Bytes()[:n]
}

// TestSetEffort: with SetEffort, zstd blocks come out smaller and decode
// to the same bytes, while a slower encoder is free; with all of them in
// use, at the fastest level, as without it.
func TestSetEffort(t *testing.T) {
	raw := logLines(DefaultBlockSize)
	e := NewEncoders(Zstd, true)
	fast := len(e.FrameWith(0, raw, Hash(raw), Zstd))
	if e.LastSlower() {
		t.Fatal("LastSlower without SetEffort")
	}
	e.SetEffort(true)
	frame := e.FrameWith(0, raw, Hash(raw), Zstd)
	if !e.LastSlower() || len(frame) >= fast {
		t.Fatalf("with SetEffort: slower %v, %d bytes against %d at the fastest level", e.LastSlower(), len(frame), fast)
	}
	checkFrameDecodes(t, frame, raw)

	var held []*zstd.Encoder
	for {
		zw := takeSlowerZstd()
		if zw == nil {
			break
		}
		held = append(held, zw)
	}
	if len(held) > runtime.GOMAXPROCS(0) {
		t.Errorf("%d slower encoders, want at most one per CPU", len(held))
	}
	frame = e.FrameWith(0, raw, Hash(raw), Zstd)
	if e.LastSlower() || len(frame) != fast {
		t.Errorf("with every slower encoder in use: slower %v, %d bytes, want the fastest level's %d", e.LastSlower(), len(frame), fast)
	}
	checkFrameDecodes(t, frame, raw)
	for _, zw := range held {
		slowerZstd.free <- zw
	}
}

func checkFrameDecodes(t *testing.T, frame, raw []byte) {
	t.Helper()
	payload := bytes.TrimSuffix(bytes.SplitN(frame, []byte("data: "), 2)[1], []byte("\n\n"))
	f, err := ParseFrame(payload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewDecoder().Decode(f)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("decoding the frame: %v, equal %v", err, bytes.Equal(got, raw))
	}
}
