package sse

import (
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// event is an Event that owns its data, for comparisons.
type event struct {
	ID, Type, Data string
}

// stream is what a Reader makes of a whole stream.
type stream struct {
	Events  []event
	LastID  string
	Retry   time.Duration
	IsRetry bool
}

// readAll reads src to the end with a Reader limited to limit bytes (0 for
// the default) and returns what it saw, and the error that ended it.
func readAll(src io.Reader, limit int) (stream, error) {
	r := NewReader(src)
	r.SetMaxEventSize(limit)
	var s stream
	var err error
	for {
		var ev Event
		if ev, err = r.Next(); err != nil {
			break
		}
		s.Events = append(s.Events, event{ev.ID, ev.Type, string(ev.Data)})
	}
	s.LastID = r.LastEventID()
	s.Retry, s.IsRetry = r.Retry()
	return s, err
}

// chunkReader returns its chunks one Read at a time, whatever the size of
// the buffer it reads into.
type chunkReader struct {
	chunks []string
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// readers returns the ways each test feeds its input to a Reader: whole,
// a byte at a time, in halves, with io.EOF on the last data, and split in
// two at every offset.
func readers(in string) map[string]func() io.Reader {
	m := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(in) },
		"onebyte":  func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		"dataerr":  func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
		"chunks/3": func() io.Reader { return &chunkReader{chunks: splitEvery(in, 3)} },
	}
	for i := 1; i < len(in); i++ {
		m["split/"+strconv.Itoa(i)] = func() io.Reader { return &chunkReader{chunks: []string{in[:i], in[i:]}} }
	}
	return m
}

func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want stream
	}{
		// Empty streams.
		{name: "empty", in: "", want: stream{}},
		{name: "only blank lines", in: "\n\r\n\r\r\n\n", want: stream{}},

		// Line endings.
		{name: "lf", in: "data: a\n\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "cr", in: "data: a\r\r", want: stream{Events: []event{{Data: "a"}}}},
		{name: "crlf", in: "data: a\r\n\r\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "mixed endings", in: "data: a\r\ndata: b\rdata: c\n\r\n",
			want: stream{Events: []event{{Data: "a\nb\nc"}}}},
		{name: "lf cr is two endings", in: "data: a\n\rdata: b\n\n",
			want: stream{Events: []event{{Data: "a"}, {Data: "b"}}}},
		{name: "cr cr is two endings", in: "data: a\r\rdata: b\r\r",
			want: stream{Events: []event{{Data: "a"}, {Data: "b"}}}},
		{name: "cr lf lf", in: "data: a\r\n\ndata: b\r\n\r\n",
			want: stream{Events: []event{{Data: "a"}, {Data: "b"}}}},
		{name: "cr in value ends the line", in: "data: a\rb\n\n",
			want: stream{Events: []event{{Data: "a"}}}},
		{name: "blank lines between events", in: "\n\ndata: a\n\n\r\n\rdata: b\n\n\n",
			want: stream{Events: []event{{Data: "a"}, {Data: "b"}}}},

		// Byte order mark.
		{name: "bom stripped", in: "\xEF\xBB\xBFdata: a\n\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "second bom kept", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
			want: stream{Events: []event{{Data: "b"}}}},
		{name: "bom later kept", in: "\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n",
			want: stream{Events: []event{{Data: "a"}}}},
		{name: "bom after blank line kept", in: "\n\xEF\xBB\xBFdata: a\n\n", want: stream{}},
		{name: "part of a bom kept", in: "\xEF\xBBdata: a\n\n", want: stream{}},
		{name: "bom alone", in: "\xEF\xBB\xBF", want: stream{}},
		{name: "bom in value kept", in: "data: \xEF\xBB\xBFa\n\n",
			want: stream{Events: []event{{Data: "\xEF\xBB\xBFa"}}}},

		// Comments.
		{name: "comment", in: ": hello\ndata: a\n\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "comment inside event", in: "data: a\n:x\ndata: b\n\n",
			want: stream{Events: []event{{Data: "a\nb"}}}},
		{name: "empty comment", in: ":\n\n:\r\n", want: stream{}},
		{name: "comment like a field", in: ":data: a\n\n", want: stream{}},

		// Field syntax.
		{name: "data without colon", in: "data\n\n", want: stream{Events: []event{{Data: ""}}}},
		{name: "data without colon twice", in: "data\ndata\n\n", want: stream{Events: []event{{Data: "\n"}}}},
		{name: "data with empty value", in: "data:\n\n", want: stream{Events: []event{{Data: ""}}}},
		{name: "data without space", in: "data:a\n\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "data with two spaces", in: "data:  a\n\n", want: stream{Events: []event{{Data: " a"}}}},
		{name: "data with only a space", in: "data: \n\n", want: stream{Events: []event{{Data: ""}}}},
		{name: "tab is not a space", in: "data:\ta\n\n", want: stream{Events: []event{{Data: "\ta"}}}},
		{name: "trailing space kept", in: "data: a \n\n", want: stream{Events: []event{{Data: "a "}}}},
		{name: "colon in value", in: "data: a: b\n\n", want: stream{Events: []event{{Data: "a: b"}}}},
		{name: "nul in data kept", in: "data: a\x00b\n\n", want: stream{Events: []event{{Data: "a\x00b"}}}},
		{name: "unknown fields", in: "foo: bar\nDATA: x\ndata : y\nid2: 1\nx\ndata: a\n\n",
			want: stream{Events: []event{{Data: "a"}}}},
		{name: "long unknown names", in: "datadata: x\neventually\nretry-after: 5\nidentifier: 3\ndata: a\n\n",
			want: stream{Events: []event{{Data: "a"}}}},
		{name: "unknown field alone", in: "foo: bar\n\n", want: stream{}},

		// data.
		{name: "data lines joined", in: "data: a\ndata: b\ndata: c\n\n",
			want: stream{Events: []event{{Data: "a\nb\nc"}}}},
		{name: "empty data line inside", in: "data: a\ndata:\ndata: b\n\n",
			want: stream{Events: []event{{Data: "a\n\nb"}}}},
		{name: "one trailing lf stripped", in: "data: a\ndata:\n\n",
			want: stream{Events: []event{{Data: "a\n"}}}},

		// event.
		{name: "type", in: "event: block\ndata: x\n\n",
			want: stream{Events: []event{{Type: "block", Data: "x"}}}},
		{name: "type message", in: "event: message\ndata: x\n\n",
			want: stream{Events: []event{{Type: "message", Data: "x"}}}},
		{name: "last type wins", in: "event: a\nevent: b\ndata: x\n\n",
			want: stream{Events: []event{{Type: "b", Data: "x"}}}},
		{name: "type after data", in: "data: x\nevent: a\n\n",
			want: stream{Events: []event{{Type: "a", Data: "x"}}}},
		{name: "type reset by dispatch", in: "event: a\ndata: 1\n\ndata: 2\n\n",
			want: stream{Events: []event{{Type: "a", Data: "1"}, {Data: "2"}}}},
		{name: "type reset by blank line without data", in: "event: a\n\ndata: 1\n\n",
			want: stream{Events: []event{{Data: "1"}}}},
		{name: "type without colon", in: "event: a\nevent\ndata: 1\n\n",
			want: stream{Events: []event{{Data: "1"}}}},
		{name: "event without data", in: "event: a\n\n", want: stream{}},

		// id.
		{name: "id", in: "id: 1\ndata: a\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}}, LastID: "1"}},
		{name: "id persists", in: "id: 1\ndata: a\n\ndata: b\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}}, LastID: "1"}},
		{name: "id after data", in: "data: a\nid: 2\n\n",
			want: stream{Events: []event{{ID: "2", Data: "a"}}, LastID: "2"}},
		{name: "id changes", in: "id: 1\ndata: a\n\nid: 2\ndata: b\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}, {ID: "2", Data: "b"}}, LastID: "2"}},
		{name: "empty id resets", in: "id: 1\ndata: a\n\nid\ndata: b\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}, {ID: "", Data: "b"}}}},
		{name: "empty id with colon resets", in: "id: 1\ndata: a\n\nid:\ndata: b\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}, {ID: "", Data: "b"}}}},
		{name: "id with nul ignored", in: "id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}}, LastID: "1"}},
		{name: "id of nul only ignored", in: "id: 1\nid: \x00\ndata: a\n\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}}, LastID: "1"}},
		{name: "id with spaces", in: "id:  a b \ndata: x\n\n",
			want: stream{Events: []event{{ID: " a b ", Data: "x"}}, LastID: " a b "}},
		{name: "id without data sets last id", in: "id: 5\n\n", want: stream{LastID: "5"}},
		{name: "id without data carries over", in: "id: 5\n\ndata: a\n\n",
			want: stream{Events: []event{{ID: "5", Data: "a"}}, LastID: "5"}},
		{name: "id of cut-off event not committed", in: "id: 1\ndata: a\n\nid: 9\ndata: b\n",
			want: stream{Events: []event{{ID: "1", Data: "a"}}, LastID: "1"}},

		// retry.
		{name: "retry", in: "retry: 1500\n", want: stream{Retry: 1500 * time.Millisecond, IsRetry: true}},
		{name: "retry zero", in: "retry: 0\n", want: stream{Retry: 0, IsRetry: true}},
		{name: "retry leading zeros", in: "retry:007\n", want: stream{Retry: 7 * time.Millisecond, IsRetry: true}},
		{name: "latest retry wins", in: "retry: 1\nretry: 2\n", want: stream{Retry: 2 * time.Millisecond, IsRetry: true}},
		{name: "retry not digits ignored",
			in:   "retry: 1500\nretry: 15x\nretry: -1\nretry: +1\nretry: 1.5\nretry:  20\nretry: 20 \nretry\nretry:\n",
			want: stream{Retry: 1500 * time.Millisecond, IsRetry: true}},
		{name: "retry only invalid", in: "retry: x\n", want: stream{}},
		{name: "retry clamped", in: "retry: 99999999999999999999999\n", want: stream{Retry: math.MaxInt64, IsRetry: true}},
		{name: "retry does not dispatch", in: "retry: 10\n\ndata: a\n\n",
			want: stream{Events: []event{{Data: "a"}}, Retry: 10 * time.Millisecond, IsRetry: true}},
		{name: "retry cut off ignored", in: "retry: 10", want: stream{}},

		// End of stream.
		{name: "cut off after data line", in: "data: a\n\ndata: b\n", want: stream{Events: []event{{Data: "a"}}}},
		{name: "cut off in data line", in: "data: a\n\ndata: b", want: stream{Events: []event{{Data: "a"}}}},
		{name: "cut off in name", in: "data: a\n\nda", want: stream{Events: []event{{Data: "a"}}}},
		{name: "cut off after cr", in: "data: a\n\ndata: b\r", want: stream{Events: []event{{Data: "a"}}}},
		{name: "ends with cr cr", in: "data: a\r\r", want: stream{Events: []event{{Data: "a"}}}},

		// A Ferry block event.
		{name: "block", in: "id: 262144\nevent: block\ndata: {\"offset\":262144,\"data\":\"AAAA\"}\n\n",
			want: stream{Events: []event{{ID: "262144", Type: "block", Data: `{"offset":262144,"data":"AAAA"}`}},
				LastID: "262144"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, src := range readers(tt.in) {
				got, err := readAll(src(), 0)
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: Next(%q) error = %v, want io.EOF", how, tt.in, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: read %q: mismatch (-want +got):\n%s", how, tt.in, diff)
				}
			}
		})
	}
}

// TestCRLFAcrossReads splits CRLF between two reads, where treating CR and
// LF as two line endings would dispatch an event too early.
func TestCRLFAcrossReads(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []event
	}{
		{"after data line", []string{"data: a\r", "\ndata: b\r\n\r\n"}, []event{{Data: "a\nb"}}},
		{"after name", []string{"data\r", "\ndata: b\r\n\r\n"}, []event{{Data: "\nb"}}},
		{"after colon", []string{"data:\r", "\ndata: b\r\n\r\n"}, []event{{Data: "\nb"}}},
		{"after comment", []string{": c\r", "\ndata: b\r\n\r\n"}, []event{{Data: "b"}}},
		{"after id", []string{"id: 1\r", "\ndata: b\r\n\r\n"}, []event{{ID: "1", Data: "b"}}},
		{"after blank line", []string{"data: a\r\n\r", "\ndata: b\r\n\r\n"}, []event{{Data: "a"}, {Data: "b"}}},
		{"cr then cr", []string{"data: a\r", "\rdata: b\r\r"}, []event{{Data: "a"}, {Data: "b"}}},
		{"cr then empty read", []string{"data: a\r", "", "\ndata: b\r\n\r\n"}, []event{{Data: "a\nb"}}},
		{"lf alone", []string{"data: a\r", "\n", "data: b\n", "\n"}, []event{{Data: "a\nb"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(&chunkReader{chunks: append([]string(nil), tt.chunks...)}, 0)
			if !errors.Is(err, io.EOF) {
				t.Errorf("Next(%q) error = %v, want io.EOF", tt.chunks, err)
			}
			if diff := cmp.Diff(tt.want, got.Events); diff != "" {
				t.Errorf("read %q: mismatch (-want +got):\n%s", tt.chunks, diff)
			}
		})
	}
}

func TestEventTooLarge(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []event // events before the error
		large bool    // whether Next reports ErrEventTooLarge
	}{
		{name: "value at limit", in: "data: 0123456789\n\n", limit: 10, want: []event{{Data: "0123456789"}}},
		{name: "value over limit", in: "data: a\n\ndata: 0123456789a\n\n", limit: 10, want: []event{{Data: "a"}}, large: true},
		{name: "data at limit", in: "data:01234\ndata:0123\n\n", limit: 10, want: []event{{Data: "01234\n0123"}}},
		{name: "data over limit", in: "data:01234\ndata:01234\n\n", limit: 10, large: true},
		{name: "many empty data lines", in: strings.Repeat("data\n", 12) + "\n", limit: 10, large: true},
		{name: "comment at limit", in: ": 0123456789\n\n", limit: 10},
		{name: "comment over limit", in: ": 0123456789a\n\n", limit: 10, large: true},
		{name: "unknown field over limit", in: "foo: 0123456789a\n\n", limit: 10, large: true},
		{name: "unknown name over limit", in: "something_long\n\n", limit: 10, large: true},
		{name: "event over limit", in: "event: 0123456789a\n\n", limit: 10, large: true},
		{name: "id over limit", in: "id: 0123456789a\n\n", limit: 10, large: true},
		{name: "no limit across events", in: strings.Repeat("data: 0123\n\n", 10), limit: 10,
			want: []event{{Data: "0123"}, {Data: "0123"}, {Data: "0123"}, {Data: "0123"}, {Data: "0123"},
				{Data: "0123"}, {Data: "0123"}, {Data: "0123"}, {Data: "0123"}, {Data: "0123"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, src := range readers(tt.in) {
				got, err := readAll(src(), tt.limit)
				if large := errors.Is(err, ErrEventTooLarge); large != tt.large || !large && !errors.Is(err, io.EOF) {
					t.Errorf("%s: Next(%q) with limit %d: error = %v, want ErrEventTooLarge: %t", how, tt.in, tt.limit, err, tt.large)
				}
				if diff := cmp.Diff(tt.want, got.Events); diff != "" {
					t.Errorf("%s: read %q: mismatch (-want +got):\n%s", how, tt.in, diff)
				}
			}
		})
	}
}

// repeatReader reads an endless run of one byte.
type repeatReader byte

func (c repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestDefaultLimit(t *testing.T) {
	for _, n := range []int{defaultMaxEventSize, defaultMaxEventSize + 1} {
		src := io.MultiReader(strings.NewReader("data:"), io.LimitReader(repeatReader('a'), int64(n)), strings.NewReader("\n\n"))
		r := NewReader(src)
		ev, err := r.Next()
		switch {
		case n <= defaultMaxEventSize && (err != nil || len(ev.Data) != n):
			t.Errorf("Next() of a %d-byte data line = %d bytes, %v; want %d bytes, nil", n, len(ev.Data), err, n)
		case n > defaultMaxEventSize && !errors.Is(err, ErrEventTooLarge):
			t.Errorf("Next() of a %d-byte data line error = %v, want ErrEventTooLarge", n, err)
		}
		if got := cap(r.buf); got > defaultMaxEventSize+minRead {
			t.Errorf("buffer of %d bytes after a %d-byte data line, want at most %d", got, n, defaultMaxEventSize+minRead)
		}
	}
}

func TestErrorsAreSticky(t *testing.T) {
	r := NewReader(strings.NewReader("data: 0123456789\n\ndata: a\n\n"))
	r.SetMaxEventSize(5)
	for i := range 3 {
		if _, err := r.Next(); !errors.Is(err, ErrEventTooLarge) {
			t.Errorf("Next() call %d error = %v, want ErrEventTooLarge", i+1, err)
		}
	}
	r = NewReader(strings.NewReader("data: a\n\n"))
	for i := range 3 {
		_, err := r.Next()
		if i > 0 && !errors.Is(err, io.EOF) {
			t.Errorf("Next() call %d error = %v, want io.EOF", i+1, err)
		}
	}
}

var errBoom = errors.New("boom")

func TestReadError(t *testing.T) {
	tests := []struct {
		name string
		src  io.Reader
		want []event
	}{
		{"at once", iotest.ErrReader(errBoom), nil},
		{"after event", io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(errBoom)), []event{{Data: "a"}}},
		{"with last data", &errAfter{data: "data: a\n\ndata: b", err: errBoom}, []event{{Data: "a"}}},
		{"inside event", io.MultiReader(strings.NewReader("data: a\n"), iotest.ErrReader(errBoom)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(tt.src, 0)
			if !errors.Is(err, errBoom) {
				t.Errorf("Next() error = %v, want %v", err, errBoom)
			}
			if diff := cmp.Diff(tt.want, got.Events); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// errAfter returns all its data and its error from one Read.
type errAfter struct {
	data string
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n := copy(p, e.data)
	e.data = e.data[n:]
	if e.data == "" {
		return n, e.err
	}
	return n, nil
}

// stuckReader returns 0, nil for ever.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	if _, err := NewReader(stuckReader{}).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("Next() on a reader that returns 0, nil error = %v, want io.ErrNoProgress", err)
	}
}

func TestComments(t *testing.T) {
	in := ": hello\n:world\r\n:\r:  two\ndata: a\n: inside\n\n:\xEF\xBB\xBF\n"
	want := []string{"hello", "world", "", " two", "inside", "\xEF\xBB\xBF"}
	for how, src := range readers(in) {
		var got []string
		r := NewReader(src())
		r.SetCommentFunc(func(text []byte) { got = append(got, string(text)) })
		var events []event
		for {
			ev, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: Next() error = %v, want io.EOF", how, err)
				}
				break
			}
			events = append(events, event{ev.ID, ev.Type, string(ev.Data)})
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: comments of %q: mismatch (-want +got):\n%s", how, in, diff)
		}
		if diff := cmp.Diff([]event{{Data: "a"}}, events); diff != "" {
			t.Errorf("%s: events of %q: mismatch (-want +got):\n%s", how, in, diff)
		}
	}
}

// ferryStream is an endless stream of block events with data of n bytes and
// ids that count up, or that stay 0 if fixedID. It allocates nothing once
// its buffers are grown.
type ferryStream struct {
	data    []byte
	fixedID bool
	off     int
	event   []byte
	pending []byte
}

func newFerryStream(n int, fixedID bool) *ferryStream {
	return &ferryStream{data: []byte(strings.Repeat("A", n)), fixedID: fixedID}
}

func (f *ferryStream) Read(p []byte) (int, error) {
	if len(f.pending) == 0 {
		id := 0
		if !f.fixedID {
			id = f.off
		}
		e := append(f.event[:0], "id: "...)
		e = strconv.AppendInt(e, int64(id), 10)
		e = append(e, "\nevent: block\ndata: "...)
		e = append(e, f.data...)
		f.event = append(e, "\n\n"...)
		f.pending = f.event
		f.off += len(f.data)
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func TestNextAllocs(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		fixedID bool
		allocs  float64
	}{
		{"small fixed id", 100, true, 0},
		{"large fixed id", 300 << 10, true, 0},
		{"small new id", 100, false, 1},
		{"large new id", 300 << 10, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFerryStream(tt.size, tt.fixedID)
			r := NewReader(src)
			next := func() {
				ev, err := r.Next()
				if err != nil || len(ev.Data) != tt.size || ev.Type != "block" {
					t.Fatalf("Next() = %d bytes of type %q, %v; want %d bytes of type block", len(ev.Data), ev.Type, err, tt.size)
				}
			}
			next() // grow the buffers
			if got := testing.AllocsPerRun(20, next); got > tt.allocs {
				t.Errorf("Next() allocates %.1f times per event, want at most %.0f", got, tt.allocs)
			}
		})
	}
}

func TestParseRetry(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Millisecond, true},
		{"1500", 1500 * time.Millisecond, true},
		{"0001", time.Millisecond, true},
		{"9223372036854", 9223372036854 * time.Millisecond, true},
		{"9223372036855", math.MaxInt64, true},
		{"99999999999999999999999999", math.MaxInt64, true},
		{"", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"١", 0, false}, // Arabic-Indic digit one
	}
	for _, tt := range tests {
		got, ok := parseRetry([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetry(%q) = %v, %t, want %v, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIndexEOL(t *testing.T) {
	at := func(n int, tail string) string { return strings.Repeat("x", n) + tail }
	tests := []struct {
		in   string
		want int
	}{
		{"", -1},
		{"abc", -1},
		{"\n", 0},
		{"\r", 0},
		{"a\r\n", 1},
		{"a\n\r", 1},
		{at(255, "\r"), 255},
		{at(256, "\r"), 256},
		{at(256, "\n"), 256},
		{at(300, "\nxx\r"), 300},
		{at(300, "\rxx\n"), 300},
		{at(1000, "\r") + at(5000, "\n"), 1000},
		{at(1000, "\n") + at(5000, "\r"), 1000},
		{at(100000, "\n"), 100000},
		{at(100000, "\r"), 100000},
		{at(100000, ""), -1},
	}
	for _, tt := range tests {
		if got := indexEOL([]byte(tt.in)); got != tt.want {
			t.Errorf("indexEOL(%.20q… (%d bytes)) = %d, want %d", tt.in, len(tt.in), got, tt.want)
		}
	}
}

func TestNameEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", -1},
		{"data", -1},
		{"data:", 4},
		{"data\n", 4},
		{"event\r", 5},
		{"retry:", 5},
		{"events:", -1},
		{":", 0},
		{"\n", 0},
		{"id: 1", 2},
	}
	for _, tt := range tests {
		if got := nameEnd([]byte(tt.in)); got != tt.want {
			t.Errorf("nameEnd(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
