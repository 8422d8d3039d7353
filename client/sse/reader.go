package sse

import (
	"bytes"
	"io"
	"math"
	"time"
)

const (
	defaultMaxEventSize = 16 << 20 // limit of a Reader without SetMaxEventSize

	minRead    = 4 << 10  // bytes first asked of the source per Read
	readSize   = 64 << 10 // bytes asked per Read once reads fill the buffer
	maxNameLen = 5        // len("event"), len("retry"): the longest known name
	maxEmpty   = 100      // empty reads in a row before giving up, as bufio does
)

var bom = []byte("\xEF\xBB\xBF")

// Event is one dispatched event.
type Event struct {
	// ID is the last event ID at dispatch: the value of the latest id
	// field, in this event or an earlier one; "" if there was none.
	ID string
	// Type is the value of the event's event field; "" if it had none,
	// which a browser reports as "message".
	Type string
	// Data is the event's data lines joined by LF. It is valid until the
	// next call to Next.
	Data []byte
}

// field is the kind of line the Reader is in the middle of.
type field uint8

const (
	lineStart field = iota // no byte of the line parsed yet
	fieldData
	fieldEvent
	fieldID
	fieldRetry
	fieldComment // a comment line, kept for the comment function
	fieldIgnore  // an unknown field, or a comment nobody asked for
)

// Reader parses an event stream. It is not safe for concurrent use.
type Reader struct {
	src     io.Reader
	buf     []byte // read buffer; buf[r:w] is not parsed yet
	r, w    int
	filled  bool  // the last Read filled buf: the next one gets a larger buf
	readErr error // error of the last Read, reported once buf is used up
	err     error // error returned by every later call to Next
	max     int   // set by SetMaxEventSize; see limit

	started   bool  // the byte order mark has been looked for
	field     field // the line in progress
	trimSpace bool  // the line's colon was just parsed: one space is dropped
	skipLF    bool  // the last line ended with CR: an LF right after it belongs to it
	lineLen   int   // bytes of the value of the line in progress

	data []byte // data buffer of the event in progress
	typ  []byte // event type buffer
	id   []byte // last event ID buffer
	val  []byte // value of the id, event, retry or comment line in progress

	typStr  string // string(typ) at the latest dispatch, kept to save allocations
	lastID  string // the last event ID, string(id) at the latest blank line
	retry   time.Duration
	isRetry bool

	onComment func(text []byte)
}

// NewReader returns a Reader that parses the stream read from src. It reads
// src in pieces of 4 KiB, growing to 64 KiB while src fills them, and keeps
// the data of one event in a buffer that grows as needed, up to the limit
// set by SetMaxEventSize.
func NewReader(src io.Reader) *Reader {
	return &Reader{src: src, buf: make([]byte, minRead+maxNameLen)}
}

// SetMaxEventSize limits to n bytes the data of one event, its data lines
// joined by LF, and the value of any one line; n <= 0 means the default,
// 16 MiB. Beyond the limit Next returns ErrEventTooLarge.
func (r *Reader) SetMaxEventSize(n int) {
	r.max = n
}

// SetCommentFunc sets a function that Next calls with the text of each
// comment line, after the colon and without one leading space; text is
// valid only during the call. A nil function, the default, ignores comments.
func (r *Reader) SetCommentFunc(f func(text []byte)) {
	r.onComment = f
}

// Retry returns the reconnection time of the latest valid retry field, and
// whether there has been one. A value too large for a time.Duration is
// clamped to the largest one.
func (r *Reader) Retry() (time.Duration, bool) {
	return r.retry, r.isRetry
}

// LastEventID returns the last event ID as of the latest blank line, the ID
// a client sends as Last-Event-ID when it reconnects. An id field of an
// event cut off by the end of the stream does not count.
func (r *Reader) LastEventID() string {
	return r.lastID
}

func (r *Reader) limit() int {
	if r.max <= 0 {
		return defaultMaxEventSize
	}
	return r.max
}

// Next returns the next event. At the end of the stream it returns io.EOF,
// discarding an event that has no blank line after it; an error of the
// source is returned as it is. After an error, every call returns it again.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	for {
		b := r.buf[r.r:r.w]
		switch {
		case !r.started:
			if len(b) < len(bom) && r.readErr == nil {
				break // need more
			}
			if bytes.HasPrefix(b, bom) {
				r.r += len(bom)
			}
			r.started = true
			continue
		case len(b) == 0:
			// need more
		case r.skipLF:
			r.skipLF = false
			if b[0] == '\n' {
				r.r++
			}
			continue
		case r.field == lineStart:
			i := nameEnd(b)
			if i < 0 {
				if len(b) <= maxNameLen {
					break // need more
				}
				// Longer than any name we know.
				r.field, r.lineLen = fieldIgnore, 0
				continue
			}
			if i == 0 && b[0] != ':' {
				// A blank line.
				r.eol(b, 0)
				if ev, ok := r.dispatch(); ok {
					return ev, nil
				}
				continue
			}
			r.field, r.lineLen = r.fieldOf(b[:i]), 0
			r.r += i
			if b[i] == ':' {
				r.r++
				r.trimSpace = true
			}
			continue
		case r.trimSpace:
			r.trimSpace = false
			if b[0] == ' ' {
				r.r++
			}
			continue
		default:
			i := indexEOL(b)
			v := b
			if i >= 0 {
				v = b[:i]
			}
			if err := r.value(v); err != nil {
				r.err = err
				return Event{}, err
			}
			if i < 0 {
				r.r = r.w
				break // need more
			}
			r.eol(b, i)
			r.endLine()
			continue
		}
		// need more
		if r.readErr != nil {
			r.err = r.readErr
			return Event{}, r.err
		}
		r.fill()
	}
}

// fill reads from the source once, after moving the unparsed bytes, of which
// there are at most maxNameLen, to the front of the buffer.
func (r *Reader) fill() {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if size := len(r.buf) - maxNameLen; r.filled && size < readSize {
		buf := make([]byte, min(2*size, readSize)+maxNameLen)
		r.w = copy(buf, r.buf[:r.w])
		r.buf = buf
	}
	for range maxEmpty {
		n, err := r.src.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			panic("sse: source returned an invalid count from Read")
		}
		r.w += n
		r.filled = r.w == len(r.buf)
		if err != nil {
			r.readErr = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.readErr = io.ErrNoProgress
}

// eol consumes the line ending at b[i], b being the unparsed bytes.
func (r *Reader) eol(b []byte, i int) {
	r.r += i + 1
	if b[i] == '\r' {
		if i+1 == len(b) {
			r.skipLF = true
		} else if b[i+1] == '\n' {
			r.r++
		}
	}
}

// fieldOf returns the field of a line with the given name.
func (r *Reader) fieldOf(name []byte) field {
	switch string(name) {
	case "data":
		return fieldData
	case "event":
		return fieldEvent
	case "id":
		return fieldID
	case "retry":
		return fieldRetry
	case "":
		if r.onComment != nil {
			return fieldComment
		}
	}
	return fieldIgnore
}

// value takes in v, the next piece of the value of the line in progress.
func (r *Reader) value(v []byte) error {
	r.lineLen += len(v)
	if r.lineLen > r.limit() {
		return ErrEventTooLarge
	}
	switch r.field {
	case fieldData:
		if len(r.data)+len(v) > r.limit() {
			return ErrEventTooLarge
		}
		r.data = append(r.data, v...)
	case fieldEvent, fieldID, fieldRetry, fieldComment:
		r.val = append(r.val, v...)
	}
	return nil
}

// endLine acts on the field line just ended.
func (r *Reader) endLine() {
	switch r.field {
	case fieldData:
		r.data = append(r.data, '\n')
	case fieldEvent:
		r.typ, r.val = r.val, r.typ
	case fieldID:
		if bytes.IndexByte(r.val, 0) < 0 {
			r.id, r.val = r.val, r.id
		}
	case fieldRetry:
		if d, ok := parseRetry(r.val); ok {
			r.retry, r.isRetry = d, true
		}
	case fieldComment:
		r.onComment(r.val)
	}
	r.val = r.val[:0]
	r.field = lineStart
}

// dispatch ends the event at a blank line and reports whether it has data.
func (r *Reader) dispatch() (Event, bool) {
	if string(r.id) != r.lastID {
		r.lastID = string(r.id)
	}
	if len(r.data) == 0 {
		r.typ = r.typ[:0]
		return Event{}, false
	}
	if string(r.typ) != r.typStr {
		r.typStr = string(r.typ)
	}
	ev := Event{ID: r.lastID, Type: r.typStr, Data: r.data[:len(r.data)-1]}
	r.data, r.typ = r.data[:0], r.typ[:0]
	return ev, true
}

// nameEnd returns the index of the colon or line ending that ends a field
// name at the start of b, or -1 if there is none within maxNameLen+1 bytes.
func nameEnd(b []byte) int {
	for i, c := range b[:min(len(b), maxNameLen+1)] {
		if c == ':' || c == '\n' || c == '\r' {
			return i
		}
	}
	return -1
}

// indexEOL returns the index of the first CR or LF in b, or -1.
//
// It searches for each byte with bytes.IndexByte over a window that doubles,
// so that a long line costs two vector scans and a short line ahead of a
// long one does not scan the long one.
func indexEOL(b []byte) int {
	const first = 256
	for lo := 0; lo < len(b); {
		hi := min(len(b), lo+max(first, lo))
		w := b[lo:hi]
		lf := bytes.IndexByte(w, '\n')
		if lf >= 0 {
			w = w[:lf]
		}
		if cr := bytes.IndexByte(w, '\r'); cr >= 0 {
			return lo + cr
		}
		if lf >= 0 {
			return lo + lf
		}
		lo = hi
	}
	return -1
}

// parseRetry parses a retry value in milliseconds: ASCII digits only.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	const maxMS = math.MaxInt64 / int64(time.Millisecond)
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxMS {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > maxMS {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}
