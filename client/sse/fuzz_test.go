package sse

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	gosse "github.com/tmaxmax/go-sse"
)

// FuzzReader checks the Reader three ways on every input: against itself
// with the input read in pieces of other sizes, against refParse, a plain
// transcription of the standard, and against go-sse's Read.
func FuzzReader(f *testing.F) {
	seeds := []string{
		"",
		"data: a\n\n",
		"data: a\r\r",
		"data: a\r\n\r\n",
		"data: a\r\ndata: b\rdata: c\n\r\n",
		"data: a\n\rdata: b\n\n",
		"data: a\rb\n\n",
		"\xEF\xBB\xBFdata: a\n\n",
		"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
		"\n\xEF\xBB\xBFdata: a\n\n",
		"\r\n\xEF\xBB\xBFdata: a\n\n",
		"\xEF\xBBdata: a\n\n",
		": comment\ndata: a\n:\n\n",
		"data\n\ndata\ndata\n\n",
		"data:a\ndata:  b\ndata:\tc\n\n",
		"event: block\ndata: x\n\ndata: y\n\n",
		"event: a\n\ndata: 1\n\n",
		"event: a\nid: 1\n\nid\ndata: x\n\n",
		"id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\nid:\ndata: c\n\n",
		"id: 5\n\n",
		"data: a\n\nid: 9\ndata: b\n",
		"retry: 1500\nretry: 15x\nretry:\nretry: 99999999999999999999\n\n",
		"foo: bar\nDATA: x\ndata : y\ndatadata: z\ndata: a\n\n",
		"data: a\n\ndata: b",
		"data: a\n\ndata: b\r",
		"id: 262144\nevent: block\ndata: {\"offset\":262144,\"data\":\"AAAA\"}\n\n",
		"data: " + strings.Repeat("A", 300) + "\r\n\r\n",
		strings.Repeat("\r", 20) + "data: a\r\r",
		strings.Repeat(":\r", 20) + "data: a\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		want := refParse(in)
		var mine stream
		for _, how := range []string{"whole", "onebyte", "random"} {
			var src io.Reader = bytes.NewReader(in)
			switch how {
			case "onebyte":
				src = iotest.OneByteReader(src)
			case "random":
				src = &randomChunks{b: in, rnd: rand.New(rand.NewPCG(seed, seed))}
			}
			got, err := readAll(src, len(in)+1)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("%s: Next(%q) error = %v, want io.EOF", how, in, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s: read %q: Reader and refParse differ (-refParse +Reader):\n%s", how, in, diff)
			}
			mine = got
		}

		other, err := goSSE(in)
		if err != nil {
			t.Fatalf("go-sse: Read(%q) error = %v", in, err)
		}
		if diff := cmp.Diff(mine.Events, dropEmpty(other, mine.Events)); diff != "" {
			t.Fatalf("read %q: Reader and go-sse differ (-Reader +go-sse):\n%s", in, diff)
		}
	})
}

// FuzzLongLines checks the Reader against refParse on streams of long
// lines, which the short inputs of FuzzReader never make: each run of n
// stars in the input becomes a value of alignMin - 4 KiB + n KiB, so that
// lines are about as long as those after which Reads are sized to the next
// line, and like or unlike each other. The stream is read whole, in pieces
// of random sizes, and in pieces as a socket hands them out.
func FuzzLongLines(f *testing.F) {
	seeds := []string{
		"data: ****\n\ndata: ****\n\ndata: ****\n\ndata: x\n\n",
		"id: 1\nevent: block\ndata: ****\n\nid: 2\nevent: block\ndata: *****\n\n: ping\nid: 3\ndata: ****\n\n",
		"data: ****\r\n\r\ndata: ****\r\n\r\ndata: ****\r\ndata: ****\r\n\r\n",
		"data: ****\r\rdata: ****\r\r: ****\rdata: **\r\rdata: ****\r",
		"data: ****\n\ndata: ****\n\ndata: ********\n\ndata: *\n\ndata: ****\n\n",
		"data: ****\n\ndata: ****\nid: ****\n\nevent: ****\ndata: ****\n\n",
		"data: ****\n\ndata: ****\n\ndata\n\ndata: ****\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		in = expandStars(in)
		want := refParse(in)
		sources := map[string]io.Reader{
			"whole":  bytes.NewReader(in),
			"pieces": &pieceReader{b: in, rnd: rand.New(rand.NewPCG(seed, 1)), lo: 1, hi: 1 + int(seed%(128<<10))},
			"socket": &pieceReader{b: in, rnd: rand.New(rand.NewPCG(seed, 2)), lo: 16 << 10, hi: 400 << 10},
		}
		for how, src := range sources {
			got, err := readAll(src, 0)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("%s: Next() error = %v, want io.EOF", how, err)
			}
			if !equalEvents(got.Events, want.Events) || got.LastID != want.LastID ||
				got.Retry != want.Retry || got.IsRetry != want.IsRetry {
				t.Fatalf("%s: Reader and refParse differ:\n%s %q\n%s %q", how,
					describe(got.Events), got.LastID, describe(want.Events), want.LastID)
			}
		}
	})
}

// expandStars replaces each run of n stars in b with a value of
// alignMin - 4 KiB + n KiB bytes, up to 8 MiB of values in all.
func expandStars(b []byte) []byte {
	const pattern = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out []byte
	total := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '*')
		if i < 0 || total > 8<<20 {
			return append(out, b...)
		}
		out = append(out, b[:i]...)
		b = b[i:]
		n := len(b) - len(bytes.TrimLeft(b, "*"))
		b = b[n:]
		m := alignMin - 4<<10 + n<<10
		for j := range m {
			out = append(out, pattern[(total+j)%len(pattern)])
		}
		total += m
	}
	return out
}

// goSSE returns the events that go-sse's Read finds in the input. Where
// go-sse strips a byte order mark that the standard keeps, it reads the
// input after a comment line, which changes nothing else: go-sse strips the
// mark at the start of its first event, even after blank lines, and the
// standard only at the start of the stream.
func goSSE(in []byte) ([]event, error) {
	if after := bytes.TrimLeft(in, "\r\n"); len(after) < len(in) && bytes.HasPrefix(after, bom) {
		in = append([]byte(":\n"), in...)
	}
	var out []event
	for ev, err := range gosse.Read(bytes.NewReader(in), &gosse.ReadConfig{MaxEventSize: len(in) + 64}) {
		if err != nil {
			return out, err
		}
		out = append(out, event{ev.LastEventID, ev.Type, ev.Data})
	}
	return out, nil
}

// dropEmpty returns other without the events with empty data that are not
// in want, in order. go-sse dispatches an event at a blank line after an
// event or id field even if there was no data field, where the standard
// dispatches nothing; such an event has empty data.
func dropEmpty(other, want []event) []event {
	var out []event
	for _, ev := range other {
		switch {
		case len(want) > 0 && ev == want[0]:
			want = want[1:]
		case ev.Data == "":
			continue
		}
		out = append(out, ev)
	}
	return out
}

// randomChunks reads b in pieces of random sizes, some of them empty.
type randomChunks struct {
	b   []byte
	rnd *rand.Rand
}

func (c *randomChunks) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.rnd.IntN(20))], c.b)
	c.b = c.b[n:]
	return n, nil
}

// refParse is the standard's algorithm written out plainly over a whole
// input, with no care for speed.
func refParse(in []byte) stream {
	var s stream
	in = bytes.TrimPrefix(in, bom)
	var data, typ, id []byte
	for {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			break // the rest is not a whole line
		}
		line := in[:i]
		if bytes.HasPrefix(in[i:], []byte("\r\n")) {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}

		if len(line) == 0 {
			s.LastID = string(id)
			if len(data) > 0 {
				s.Events = append(s.Events, event{s.LastID, string(typ), string(data[:len(data)-1])})
			}
			data, typ = nil, nil
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(name) {
		case "data":
			data = append(append(data, value...), '\n')
		case "event":
			typ = value
		case "id":
			if !bytes.Contains(value, []byte{0}) {
				id = value
			}
		case "retry":
			if len(value) > 0 && len(bytes.Trim(value, "0123456789")) == 0 {
				ms, err := strconv.ParseInt(string(value), 10, 64)
				switch {
				case err != nil || ms > math.MaxInt64/int64(time.Millisecond):
					s.Retry = math.MaxInt64
				default:
					s.Retry = time.Duration(ms) * time.Millisecond
				}
				s.IsRetry = true
			}
		}
	}
	return s
}
