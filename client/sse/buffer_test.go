package sse

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The tests in this file are about how the Reader buffers its input: data
// parsed in place, Reads that never wait for more than the event needs, and
// memory that stays bounded.

// pieceReader reads b in pieces of random sizes from lo to hi bytes, or
// less if p is shorter, as a socket hands out what has arrived.
type pieceReader struct {
	b      []byte
	rnd    *rand.Rand
	lo, hi int
}

func (c *pieceReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.lo+c.rnd.IntN(c.hi-c.lo+1))], c.b)
	c.b = c.b[n:]
	return n, nil
}

// piecesOf limits each Read of src to a random size from lo to hi bytes.
type piecesOf struct {
	src    io.Reader
	rnd    *rand.Rand
	lo, hi int
}

func (c *piecesOf) Read(p []byte) (int, error) {
	return c.src.Read(p[:min(len(p), c.lo+c.rnd.IntN(c.hi-c.lo+1))])
}

// inBuf reports whether b is a part of the Reader's read buffer.
func inBuf(r *Reader, b []byte) bool {
	if len(b) == 0 || len(r.buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(r.buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(r.buf))
}

// TestDataInBuffer checks that the data of an event of one data line is a
// slice of the read buffer, not a copy, however the stream is cut up.
func TestDataInBuffer(t *testing.T) {
	sources := map[string]func() io.Reader{
		"one event per read": func() io.Reader { return newFerryStream(350_000, false) },
		"socket": func() io.Reader {
			return &piecesOf{src: newFerryStream(350_000, false), rnd: rand.New(rand.NewPCG(1, 1)), lo: 16 << 10, hi: 400 << 10}
		},
		"small pieces": func() io.Reader {
			return &piecesOf{src: newFerryStream(350_000, false), rnd: rand.New(rand.NewPCG(2, 2)), lo: 1, hi: 64 << 10}
		},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			r := NewReader(src())
			copies := 0
			for i := range 50 {
				ev, err := r.Next()
				if err != nil || len(ev.Data) != 350_000 {
					t.Fatalf("Next() call %d = %d bytes, %v; want 350000 bytes, nil", i+1, len(ev.Data), err)
				}
				if !inBuf(r, ev.Data) {
					copies++
				}
			}
			if copies > 0 {
				t.Errorf("Data of %d events in 50 is a copy, want a slice of the read buffer", copies)
			}
			if cap(r.data) != 0 {
				t.Errorf("data buffer has grown to %d bytes, want 0: data lines were copied", cap(r.data))
			}
		})
	}
}

// TestAppendToData checks that appending to the data of an event does not
// overwrite the stream that follows it in the read buffer.
func TestAppendToData(t *testing.T) {
	in := "data: a\n\ndata: b\ndata: c\n\ndata: d\n\n"
	want := []string{"a", "b\nc", "d"}
	for how, src := range readers(in) {
		r := NewReader(src())
		for i, w := range want {
			ev, err := r.Next()
			if err != nil || string(ev.Data) != w {
				t.Errorf("%s: Next() call %d = %q, %v; want %q, nil", how, i+1, ev.Data, err, w)
				break
			}
			_ = append(ev.Data, "\n\ndata: x\n\n"...)
		}
	}
}

// feedReader hands out the pieces sent on its channel, blocking in Read
// until one arrives; a piece longer than p takes several Reads. Once the
// channel is closed, Read returns io.EOF.
type feedReader struct {
	pieces <-chan string
	rest   string
}

func (f *feedReader) Read(p []byte) (int, error) {
	if f.rest == "" {
		s, ok := <-f.pieces
		if !ok {
			return 0, io.EOF
		}
		f.rest = s
	}
	n := copy(p, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// TestNextDoesNotWait feeds a stream piece by piece, from a source that
// blocks until the next piece, and checks that each event and comment comes
// out as soon as its last byte is in: Next must not read again before it
// returns an event it has, however large the Reads it makes for long lines.
func TestNextDoesNotWait(t *testing.T) {
	block := func(id, n int) string {
		return "id: " + strconv.Itoa(id) + "\nevent: block\ndata: " + strings.Repeat(string(rune('A'+id%26)), n) + "\n\n"
	}
	blockEvent := func(id, n int) event {
		return event{ID: strconv.Itoa(id), Type: "block", Data: strings.Repeat(string(rune('A'+id%26)), n)}
	}
	type step struct {
		piece    string
		want     []event  // events that must come out before the next Read
		comments []string // comments that must come out before the next Read
	}
	steps := []step{
		{piece: "retry: 10\n: hello\n", comments: []string{"hello"}},
		{piece: "event: meta\ndata: {}\n\n", want: []event{{Type: "meta", Data: "{}"}}},
		{piece: block(1, 300_000), want: []event{blockEvent(1, 300_000)}},
		{piece: block(2, 300_000)[:100]},
		{piece: block(2, 300_000)[100:], want: []event{blockEvent(2, 300_000)}},
		// Like events: the Reads are sized to them now.
		{piece: block(3, 300_000), want: []event{blockEvent(3, 300_000)}},
		{piece: block(4, 300_000) + block(5, 300_000)[:5000], want: []event{blockEvent(4, 300_000)}},
		{piece: block(5, 300_000)[5000:], want: []event{blockEvent(5, 300_000)}},
		{piece: ": ping\n", comments: []string{"ping"}},
		{piece: "data: x\r\r", want: []event{{ID: "5", Data: "x"}}},
		{piece: "data: y\r\n\r", want: []event{{ID: "5", Data: "y"}}},
		{piece: "\ndata: z\n"},
		{piece: "\n", want: []event{{ID: "5", Data: "z"}}},
		{piece: block(6, 300_000), want: []event{blockEvent(6, 300_000)}},
		{piece: block(7, 300_000), want: []event{blockEvent(7, 300_000)}},
		// Shorter and longer than the Reads expect.
		{piece: block(8, 1000), want: []event{blockEvent(8, 1000)}},
		{piece: block(9, 300_000), want: []event{blockEvent(9, 300_000)}},
		{piece: block(10, 300_000), want: []event{blockEvent(10, 300_000)}},
		{piece: block(11, 700_000)[:400_000]},
		{piece: block(11, 700_000)[400_000:], want: []event{blockEvent(11, 700_000)}},
		{piece: "event: end\ndata: {}\n\n", want: []event{{ID: "11", Type: "end", Data: "{}"}}},
	}

	pieces := make(chan string)
	comments := make(chan string, 10)
	type result struct {
		ev  event
		err error
	}
	results := make(chan result)
	r := NewReader(&feedReader{pieces: pieces})
	r.SetCommentFunc(func(text []byte) { comments <- string(text) })
	go func() {
		// Ends when Next fails, at the latest at io.EOF after close(pieces).
		for {
			ev, err := r.Next()
			results <- result{event{ev.ID, ev.Type, string(ev.Data)}, err}
			if err != nil {
				return
			}
		}
	}()
	closed := false
	defer func() {
		if !closed {
			close(pieces)
			for res := range results {
				if res.err != nil {
					return
				}
			}
		}
	}()

	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for i, s := range steps {
		pieces <- s.piece
		for _, want := range s.comments {
			select {
			case got := <-comments:
				if got != want {
					t.Fatalf("step %d: comment %q, want %q", i, got, want)
				}
			case <-timeout.C:
				t.Fatalf("step %d: comment %q did not come out", i, want)
			}
		}
		for _, want := range s.want {
			select {
			case res := <-results:
				if res.err != nil || res.ev != want {
					t.Fatalf("step %d: Next() = %s, %v; want %s", i, short(res.ev), res.err, short(want))
				}
			case <-timeout.C:
				t.Fatalf("step %d: Next() did not return %s: it waits for more input", i, short(want))
			}
		}
	}
	close(pieces)
	closed = true
	select {
	case res := <-results:
		if !errors.Is(res.err, io.EOF) {
			t.Errorf("Next() at the end = %s, %v; want io.EOF", short(res.ev), res.err)
		}
	case <-timeout.C:
		t.Errorf("Next() did not return at the end of the stream")
	}
}

// short describes an event in a line.
func short(ev event) string {
	data := ev.Data
	if len(data) > 20 {
		data = fmt.Sprintf("%.10s…%d bytes", data, len(data))
	}
	return fmt.Sprintf("{ID %q, Type %q, Data %q}", ev.ID, ev.Type, data)
}

// TestMemoryBounded reads many Ferry block events in various ways and
// checks that the buffers stay small and that nothing is allocated per
// event once they have grown.
func TestMemoryBounded(t *testing.T) {
	const size = 350_000
	tests := []struct {
		name string
		src  func() io.Reader
	}{
		{"one event per read", func() io.Reader { return newFerryStream(size, true) }},
		{"socket", func() io.Reader {
			return &piecesOf{src: newFerryStream(size, true), rnd: rand.New(rand.NewPCG(1, 1)), lo: 16 << 10, hi: 400 << 10}
		}},
		{"small pieces", func() io.Reader {
			return &piecesOf{src: newFerryStream(size, true), rnd: rand.New(rand.NewPCG(2, 2)), lo: 1, hi: 64 << 10}
		}},
		{"fills every read", func() io.Reader { return &loopReader{b: []byte(ferryEvents(size, 8))} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.src())
			next := func() {
				ev, err := r.Next()
				if err != nil || len(ev.Data) != size {
					t.Fatalf("Next() = %d bytes, %v; want %d bytes, nil", len(ev.Data), err, size)
				}
			}
			for range 100 {
				next()
			}
			if got := testing.AllocsPerRun(100, next); got > 0 {
				t.Errorf("Next() allocates %.1f times per event, want 0", got)
			}
			if got := cap(r.buf) + cap(r.data); got > 2<<20 {
				t.Errorf("buffers hold %d bytes after 300 events of %d bytes, want at most 2 MiB", got, size)
			}
		})
	}
}

// ferryEvents returns n block events with size bytes of data each, all
// with ID 1.
func ferryEvents(size, n int) string {
	return strings.Repeat("id: 1\nevent: block\ndata: "+strings.Repeat("A", size)+"\n\n", n)
}

// TestMemoryLimit checks the memory held by a Reader against its limit:
// about twice the limit in the worst case, and no more than the lines need
// when data lines are followed by many other lines.
func TestMemoryLimit(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name string
		in   string
		want []int // lengths of the events' data
		max  int   // bytes the buffers may hold
	}{
		{
			name: "lines at the limit",
			in: "data: " + strings.Repeat("a", limit) + "\n\n" +
				"data: " + strings.Repeat("b", limit/2) + "\ndata: " + strings.Repeat("c", limit/2-1) + "\n\n" +
				"data: " + strings.Repeat("d", limit) + "\n\n",
			want: []int{limit, limit, limit},
			max:  limit + minRead + limit*5/4, // the data buffer grows as append does
		},
		{
			name: "many comments after a data line",
			in:   "data: x\n" + strings.Repeat(": "+strings.Repeat("c", 100)+"\n", 100_000) + "\n",
			want: []int{1},
			max:  2 * maxRead,
		},
		{
			name: "many comments after a long data line",
			in:   "data: " + strings.Repeat("a", 200_000) + "\n" + strings.Repeat(": "+strings.Repeat("c", 100)+"\n", 100_000) + "\n",
			want: []int{200_000},
			max:  200_000 + 2*maxRead,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, src := range map[string]io.Reader{
				"whole":  strings.NewReader(tt.in),
				"pieces": &pieceReader{b: []byte(tt.in), rnd: rand.New(rand.NewPCG(1, 1)), lo: 1, hi: 400 << 10},
			} {
				r := NewReader(src)
				r.SetMaxEventSize(limit)
				var got []int
				for {
					ev, err := r.Next()
					if err != nil {
						if !errors.Is(err, io.EOF) {
							t.Errorf("%s: Next() error = %v, want io.EOF", how, err)
						}
						break
					}
					got = append(got, len(ev.Data))
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%s: events of %v bytes, want %v", how, got, tt.want)
				}
				if held := cap(r.buf) + cap(r.data); held > tt.max {
					t.Errorf("%s: buffers hold %d bytes, want at most %d", how, held, tt.max)
				}
			}
		})
	}
}

// TestLineOverLimit checks that a line longer than the limit is caught
// without buffering it, after like lines that size the Reads.
func TestLineOverLimit(t *testing.T) {
	const limit = 300_000
	like := strings.Repeat("data: "+strings.Repeat("a", 200_000)+"\n\n", 3)
	for _, n := range []int{limit + 1, 10 * limit} {
		in := like + "data: " + strings.Repeat("b", limit) + "\n\n"
		src := io.MultiReader(strings.NewReader(in+"data:"), io.LimitReader(repeatReader('c'), int64(n)), strings.NewReader("\n\n"))
		r := NewReader(src)
		r.SetMaxEventSize(limit)
		for i := range 4 {
			if _, err := r.Next(); err != nil {
				t.Fatalf("Next() call %d error = %v", i+1, err)
			}
		}
		if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
			t.Errorf("Next() of a %d-byte line with limit %d: error = %v, want ErrEventTooLarge", n, limit, err)
		}
		if got := cap(r.buf); got > 1<<20 {
			t.Errorf("buffer of %d bytes after a %d-byte line, want at most 1 MiB", got, n)
		}
	}
}

// TestFewGrowths reads long lines a byte or two at a time and checks that
// the buffer grows only a few times, geometrically, and not by the little
// each Read adds.
func TestFewGrowths(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	tests := []struct {
		name string
		in   string
	}{
		{"one long line", "data: " + long("a", 1<<20) + "\n\n"},
		// Two like lines size the Reads, then the data line is kept in the
		// buffer while a long id line follows it.
		{"long line after kept data", "data: " + long("a", alignMin) + "\n\ndata: " + long("b", alignMin) +
			"\nid: " + long("c", alignMin) + "\n\n"},
		{"long lines after like lines", strings.Repeat("data: "+long("a", 100_000)+"\n\n", 3) +
			"data: " + long("b", 500_000) + "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(1, func() {
				src := &pieceReader{b: []byte(tt.in), rnd: rand.New(rand.NewPCG(1, 1)), lo: 1, hi: 2}
				r := NewReader(src)
				for {
					if _, err := r.Next(); err != nil {
						break
					}
				}
			})
			// The source, the Reader, the growths of its buffers and the id:
			// 16 at most when this was written.
			if allocs > 40 {
				t.Errorf("reading %d bytes a byte or two at a time allocates %.0f times, want at most 40", len(tt.in), allocs)
			}
		})
	}
}

// TestLongLines puts the end of a long data line, and each of its bytes if
// it is CRLF, at the end of a Read, around the lengths at which the buffer
// grows; a piece of the stream is handed out per Read as it is, whole or cut
// there.
func TestLongLines(t *testing.T) {
	const head = "id: 1\ndata: "
	var lengths []int
	for _, k := range []int{minRead, 2 * minRead, 3 * minRead, 7 * minRead, alignMin, maxRead / 2, maxRead, maxRead + minRead} {
		for d := -3; d <= 3; d++ {
			lengths = append(lengths, k-len(head)+d)
		}
	}
	for _, eol := range []string{"\n", "\r", "\r\n"} {
		for _, n := range lengths {
			value := strings.Repeat("A", n)
			// A single data line, a like one (for sized Reads), one of two
			// lines, and a short event.
			ev := head + value + eol + eol
			in := ev + ev + head + value + eol + "data: b" + eol + eol + "data: c" + eol + eol
			want := []event{{ID: "1", Data: value}, {ID: "1", Data: value}, {ID: "1", Data: value + "\nb"}, {ID: "1", Data: "c"}}
			sources := map[string]func() io.Reader{
				"whole": func() io.Reader { return strings.NewReader(in) },
			}
			for _, at := range []int{len(ev), 2 * len(ev)} {
				for d := -len(eol) * 2; d <= 1; d++ {
					cut := at + d
					sources[fmt.Sprintf("cut at %d%+d", at, d)] = func() io.Reader {
						return &chunkReader{chunks: []string{in[:cut], in[cut:]}}
					}
				}
			}
			for how, src := range sources {
				got, err := readAll(src(), 0)
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: Next() of %d-byte lines ended by %q: error = %v, want io.EOF", how, n, eol, err)
				}
				if !equalEvents(got.Events, want) {
					t.Errorf("%s: %d-byte lines ended by %q: got %s, want %s", how, n, eol, describe(got.Events), describe(want))
				}
			}
		}
	}
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// describe lists events in a line.
func describe(evs []event) string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = short(ev)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestRandomStreams compares the Reader with refParse on random streams of
// long and short lines of every kind, read in pieces of many sizes.
func TestRandomStreams(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 4
	}
	for i := range n {
		rnd := rand.New(rand.NewPCG(uint64(i), 7))
		in := randomStream(rnd, 40)
		want := refParse(in)
		for _, hi := range []int{64, 4 << 10, 64 << 10, 700 << 10} {
			src := &pieceReader{b: in, rnd: rand.New(rand.NewPCG(uint64(i), uint64(hi))), lo: 1, hi: hi}
			got, err := readAll(src, 0)
			if !errors.Is(err, io.EOF) {
				t.Errorf("stream %d, pieces of up to %d bytes: error = %v, want io.EOF", i, hi, err)
			}
			if !equalEvents(got.Events, want.Events) || got.LastID != want.LastID || got.Retry != want.Retry || got.IsRetry != want.IsRetry {
				t.Errorf("stream %d, pieces of up to %d bytes: Reader and refParse differ:\n%s\n%s",
					i, hi, describe(got.Events), describe(want.Events))
			}
		}
	}
}

// randomStream returns n random events: mostly block-like events with data
// lines of one length or of random lengths up to 400 KB, with ids, types,
// comments, several data lines, and any line ending.
func randomStream(rnd *rand.Rand, n int) []byte {
	const pattern = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	eols := []string{"\n", "\r", "\r\n"}
	eol := eols[rnd.IntN(len(eols))]
	like := alignMin + rnd.IntN(300_000)
	value := func(n int) []byte {
		v := make([]byte, n)
		off := rnd.IntN(len(pattern))
		for i := range v {
			v[i] = pattern[(off+i)%len(pattern)]
		}
		return v
	}
	var b []byte
	line := func(s ...[]byte) {
		for _, p := range s {
			b = append(b, p...)
		}
		if rnd.IntN(8) == 0 {
			eol = eols[rnd.IntN(len(eols))]
		}
		b = append(b, eol...)
	}
	for i := range n {
		if rnd.IntN(4) == 0 {
			line([]byte(": ping"))
		}
		if rnd.IntN(4) > 0 {
			line([]byte("id: " + strconv.Itoa(i)))
		}
		if rnd.IntN(4) > 0 {
			line([]byte("event: block"))
		}
		if rnd.IntN(10) == 0 {
			line([]byte("retry: " + strconv.Itoa(rnd.IntN(5000))))
		}
		for range 1 + rnd.IntN(4)/3 {
			switch k := rnd.IntN(10); {
			case k < 6:
				line([]byte("data: "), value(like+rnd.IntN(100)))
			case k < 8:
				line([]byte("data: "), value(rnd.IntN(400_000)))
			default:
				line([]byte("data:"), value(rnd.IntN(100)))
			}
			if rnd.IntN(10) == 0 {
				line([]byte(":"), value(rnd.IntN(1000)))
			}
		}
		line()
	}
	return b
}

// askLog records the size of every Read asked of it.
type askLog struct {
	src  io.Reader
	asks []int
}

func (a *askLog) Read(p []byte) (int, error) {
	a.asks = append(a.asks, len(p))
	return a.src.Read(p)
}

// TestReadsSizedToEvents checks that, in a run of like events, Reads ask
// for whole events: one of Ferry's 350 KB events of 256 KiB blocks, or
// several 87 KB events of 64 KiB blocks (one each cost 8 % more CPU), and
// that the small events at the start come out of small Reads.
func TestReadsSizedToEvents(t *testing.T) {
	for _, tt := range []struct {
		size      int // bytes of data per event
		minEvents int // whole events each Read asks for, at least
	}{
		{349_556, 1},
		{87_412, 4},
	} {
		t.Run(strconv.Itoa(tt.size), func(t *testing.T) {
			stream := "retry: 1500\nevent: meta\ndata: {}\n\n" + ferryEvents(tt.size, 40)
			log := &askLog{src: strings.NewReader(stream)}
			r := NewReader(log)
			for {
				if _, err := r.Next(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if log.asks[0] > 4<<10 {
				t.Errorf("first Read asked for %d bytes, want at most 4 KiB", log.asks[0])
			}
			event := len("id: 1\nevent: block\ndata: \n\n") + tt.size
			steady := log.asks[len(log.asks)/2 : len(log.asks)-1]
			for _, n := range steady {
				if n < tt.minEvents*event || n > max(maxRead, event+lineSlack) {
					t.Fatalf("Reads asked for %v bytes; want each to be at least %d whole events of %d bytes, and at most %d", steady, tt.minEvents, event, max(maxRead, event+lineSlack))
				}
			}
		})
	}
}
