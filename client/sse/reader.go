package sse

import (
	"bytes"
	"io"
	"math"
	"time"
)

const (
	defaultMaxEventSize = 16 << 20 // limit of a Reader without SetMaxEventSize

	minRead    = 4 << 10   // bytes first asked of the source per Read
	maxRead    = 512 << 10 // most bytes asked per Read, reached while Reads fill what they are given
	alignMin   = 64 << 10  // shortest data line after which Reads are sized to the next one
	lineSlack  = 4 << 10   // bytes asked beyond the expected end of a data line
	maxNameLen = 5         // len("event"), len("retry"): the longest known name
	maxEmpty   = 100       // empty reads in a row before giving up, as bufio does
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
	// next call to Next, which may overwrite it: the data of an event of
	// one data line is a slice of the Reader's read buffer.
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
//
// The value of a data, event, id, retry or comment line stays in the read
// buffer until its line ending arrives, so a line is parsed in place; the
// buffer grows to hold it. The data of an event that has a single data line,
// the common case, stays there too, and Next returns a slice of the buffer.
type Reader struct {
	src     io.Reader
	buf     []byte // read buffer; buf[r:w] is not parsed yet
	r, w    int
	rsize   int   // bytes asked of the source per Read
	readErr error // error of the last Read, reported once buf is used up
	err     error // error returned by every later call to Next
	max     int   // set by SetMaxEventSize; see limit

	started   bool  // the byte order mark has been looked for
	field     field // the line in progress
	trimSpace bool  // the line's colon was just parsed: one space is dropped
	skipLF    bool  // the last line ended with CR: an LF right after it belongs to it
	scanned   int   // bytes of the value at buf[r:] known to hold no line ending
	ignored   int   // bytes of the ignored line in progress already dropped
	lastLine  int   // length of the latest data line, to size the Reads for the next
	prevLine  int   // length of the data line before it

	// The data of the event in progress is buf[dataStart:dataEnd] if inBuf,
	// or else data, each line followed by an LF.
	inBuf              bool
	dataStart, dataEnd int
	data               []byte

	typ []byte // event type buffer
	id  []byte // last event ID buffer

	typStr  string // string(typ) at the latest dispatch, kept to save allocations
	lastID  string // the last event ID, string(id) at the latest blank line
	retry   time.Duration
	isRetry bool

	onComment func(text []byte)
}

// NewReader returns a Reader that parses the stream read from src. It reads
// src in pieces of 4 KiB, growing to 512 KiB while src fills them, into a
// buffer that grows to hold the longest line, up to the limit set by
// SetMaxEventSize.
func NewReader(src io.Reader) *Reader {
	return &Reader{src: src, rsize: minRead}
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
//
// Next calls Read on the source only while the bytes it holds do not
// complete an event, and returns the event as soon as its blank line is in:
// it never waits for more of the stream than the event needs.
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
				r.field, r.ignored = fieldIgnore, 0
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
			r.field, r.ignored = r.fieldOf(b[:i]), 0
			if r.field == fieldData && r.inBuf {
				// A second data line: the data moves out of buf.
				r.data = append(append(r.data, r.buf[r.dataStart:r.dataEnd]...), '\n')
				r.inBuf = false
			}
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
		case r.field == fieldIgnore:
			i := indexEOL(b)
			n := i
			if i < 0 {
				n = len(b)
			}
			if r.ignored += n; r.ignored > r.limit() {
				return r.fail(ErrEventTooLarge)
			}
			if i < 0 {
				r.r = r.w
				break // need more
			}
			r.eol(b, i)
			r.field = lineStart
			continue
		default:
			// The value stays in buf until its line ending arrives.
			i := indexEOL(b[r.scanned:])
			if i < 0 {
				r.scanned = len(b)
				if r.tooLong(len(b)) {
					return r.fail(ErrEventTooLarge)
				}
				break // need more
			}
			i += r.scanned
			r.scanned = 0
			if r.tooLong(i) {
				return r.fail(ErrEventTooLarge)
			}
			r.endLine(b[:i])
			r.eol(b, i)
			continue
		}
		// need more
		if r.readErr != nil {
			return r.fail(r.readErr)
		}
		r.fill()
	}
}

// fail makes err the error of every later call to Next, and returns it.
func (r *Reader) fail(err error) (Event, error) {
	r.err = err
	return Event{}, err
}

// tooLong reports whether n bytes of value of the line in progress break
// the limit, by themselves or with the data of the event before them.
func (r *Reader) tooLong(n int) bool {
	return n > r.limit() || r.field == fieldData && len(r.data)+n > r.limit()
}

// fill reads from the source once, asking for rsize bytes. When the last
// two data lines were long and of about the same length, a stream of like
// events, it asks instead for the rest of a line as long as the last one,
// and for as many such lines after it as fit in maxRead, each with
// lineSlack bytes more: then a Read ends just after an event rather than
// inside the next one, and the part of a line moved to make room is short.
func (r *Reader) fill() {
	need := r.rsize
	if r.lastLine >= alignMin && max(r.lastLine, r.prevLine)-min(r.lastLine, r.prevLine) <= lineSlack {
		done := 0
		if r.field == fieldData {
			done = r.scanned
		}
		if done < r.lastLine {
			// The rest of this line, and as many whole lines after it as
			// fit in maxRead: with 64 KiB blocks (87 KB events) one event
			// per Read cost 8 % more CPU than five.
			k := max(1, maxRead/(r.lastLine+lineSlack))
			need = r.lastLine - done + lineSlack + (k-1)*(r.lastLine+lineSlack)
		}
	}
	r.makeRoom(need)
	p := r.buf[r.w:min(len(r.buf), r.w+min(need, r.rsize))]
	for range maxEmpty {
		n, err := r.src.Read(p)
		if n < 0 || n > len(p) {
			panic("sse: source returned an invalid count from Read")
		}
		r.w += n
		if n == len(p) {
			r.rsize = min(2*r.rsize, maxRead)
		}
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

// makeRoom makes need bytes free after the bytes that must stay, the
// unparsed ones and the data of the event in progress, as far as the limit
// allows. It moves those bytes to the front of the buffer if they are few,
// which keeps the front of the buffer warm in the cache, or if there is no
// room after them, and grows the buffer if that is not enough. Data in the
// buffer is copied out if more bytes follow it than it has, or if it would
// leave less than minRead bytes free in the largest buffer.
func (r *Reader) makeRoom(need int) {
	keep := r.r
	if r.inBuf {
		keep = r.dataStart
	}
	if len(r.buf)-r.w >= need && (keep == 0 || r.w-keep > lineSlack) {
		return
	}
	size := r.sizeFor(r.w-keep, need)
	if r.inBuf && (r.r-r.dataEnd > r.dataEnd-r.dataStart || r.w-keep+minRead > size) {
		r.data = append(append(r.data, r.buf[r.dataStart:r.dataEnd]...), '\n')
		r.inBuf = false
		keep = r.r
		size = r.sizeFor(r.w-keep, need)
	}
	if size > len(r.buf) {
		buf := make([]byte, size)
		copy(buf, r.buf[keep:r.w])
		r.buf = buf
	} else if keep > 0 {
		copy(r.buf, r.buf[keep:r.w])
	}
	r.w -= keep
	r.r -= keep
	r.dataStart -= keep
	r.dataEnd -= keep
}

// sizeFor returns the length the buffer needs for kept bytes and need more:
// its length if they fit, or else at least 1.5 times its length and twice
// kept, so that a long line grows the buffer only a few times, however
// small the Reads. The longest buffer holds a line at the limit, or two
// Reads of maxRead if that is more.
func (r *Reader) sizeFor(kept, need int) int {
	if kept+need <= len(r.buf) {
		return len(r.buf)
	}
	size := max(kept+need, 2*kept, len(r.buf)+len(r.buf)/2)
	return min(size, max(r.limit()+minRead, 2*maxRead))
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

// endLine acts on v, the value of the field line just ended, which starts
// at buf[r].
func (r *Reader) endLine(v []byte) {
	switch r.field {
	case fieldData:
		if len(r.data) == 0 {
			r.inBuf, r.dataStart, r.dataEnd = true, r.r, r.r+len(v)
		} else {
			r.data = append(append(r.data, v...), '\n')
		}
		r.prevLine, r.lastLine = r.lastLine, len(v)
	case fieldEvent:
		r.typ = append(r.typ[:0], v...)
	case fieldID:
		if bytes.IndexByte(v, 0) < 0 {
			r.id = append(r.id[:0], v...)
		}
	case fieldRetry:
		if d, ok := parseRetry(v); ok {
			r.retry, r.isRetry = d, true
		}
	case fieldComment:
		r.onComment(v)
	}
	r.field = lineStart
}

// dispatch ends the event at a blank line and reports whether it has data.
func (r *Reader) dispatch() (Event, bool) {
	if string(r.id) != r.lastID {
		r.lastID = string(r.id)
	}
	var data []byte
	switch {
	case r.inBuf:
		// Capped, so that appending to it cannot overwrite the stream.
		data = r.buf[r.dataStart:r.dataEnd:r.dataEnd]
		r.inBuf = false
	case len(r.data) > 0:
		data = r.data[:len(r.data)-1]
		r.data = r.data[:0]
	default:
		r.typ = r.typ[:0]
		return Event{}, false
	}
	if string(r.typ) != r.typStr {
		r.typStr = string(r.typ)
	}
	r.typ = r.typ[:0]
	return Event{ID: r.lastID, Type: r.typStr, Data: data}, true
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
