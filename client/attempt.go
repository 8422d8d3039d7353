package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/client/sse"
)

// How one connection ends, besides the errors of the network and HTTP.
var (
	errCut     = errors.New("client: stream ended before its end event")
	errCorrupt = errors.New("client: block failed verification")
	// errDisagrees: a block matched its own event's hash but not the
	// manifest's; the manifest itself may be what was damaged in transit.
	errDisagrees = errors.New("client: block disagrees with the manifest")
)

// maxBadInARow is how many blocks in a row may fail verification before a
// connection is given up as hopeless (a proxy that damages everything);
// fewer are dropped and the stream read on, so that what is in flight
// behind a bad block is not thrown away.
const maxBadInARow = 8

// stream is one open event stream, read up to and including its meta event.
type stream struct {
	ctx    context.Context // cancelled with errIdle by the watchdog
	url    string
	meta   chunker.Meta
	resp   *http.Response
	body   *idleReader
	events *sse.Reader
	watch  *time.Timer
	cancel context.CancelCauseFunc
	metaAt int64 // body bytes read when the meta event came
	ended  bool  // the end event came
}

func (s *stream) close() {
	if s.ended {
		// Only the response's end is left: reading it lets the transport
		// use the connection again.
		io.CopyN(io.Discard, s.resp.Body, 4<<10)
	}
	s.watch.Stop()
	s.cancel(nil)
	s.resp.Body.Close()
}

// opened is what asking for a stream gave, when it gave no error.
type opened struct {
	s        *stream // nil unless the server sent a stream
	empty    bool    // 204: nothing left of the span
	changed  bool    // the server has another version (412, or another meta)
	etag     string  // the other version's etag, if the server said
	tooShort bool    // 416 for a probe: the file is empty
}

// open asks for the blocks of sp from next on, pinned to ver if known, and
// reads the stream's meta event.
func (d *download) open(ctx context.Context, ver version, sp span, next int64) (opened, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	u := d.ep.sse(d.streamQuery(ver.ETag, false))
	req, err := d.newRequest(ctx, u)
	if err != nil {
		cancel(nil)
		return opened{}, err
	}
	if sp.end > sp.start {
		req.Header.Set(chunker.HeaderRange, "bytes="+strconv.FormatInt(sp.start, 10)+"-"+strconv.FormatInt(max(sp.end-1, 0), 10))
	}
	if next > sp.start {
		req.Header.Set(chunker.HeaderLastEventID, chunker.FormatOffset(next-int64(ver.BlockSize)))
	}
	// The idle watchdog runs from the request on: a server that never
	// answers stalls the same as one that stops sending.
	watch := time.AfterFunc(d.cfg.idle, func() { cancel(errIdle) })
	resp, err := d.cfg.hc.Do(req)
	if err != nil {
		watch.Stop()
		cancel(nil)
		return opened{}, netError(ctx, err)
	}
	s := &stream{ctx: ctx, url: u, resp: resp, watch: watch, cancel: cancel}
	o, err := d.answer(s, ver, sp, next)
	if o.s == nil {
		s.close()
	}
	return o, err
}

// streamQuery is the query of a stream request: pinned to etag if not "",
// the codecs the client decodes, and follow.
func (d *download) streamQuery(etag string, follow bool) url.Values {
	q := url.Values{}
	if follow {
		q.Set(chunker.QueryFollow, "1")
	}
	if etag != "" {
		q.Set(chunker.QueryVersion, etag)
	}
	if !d.opts.NoCompression {
		q.Set(chunker.QueryEncoding, chunker.S2+","+chunker.Zstd+","+chunker.Gzip)
	}
	return q
}

// answer reads the response to a stream request up to its meta event.
func (d *download) answer(s *stream, ver version, sp span, next int64) (opened, error) {
	switch s.resp.StatusCode {
	case http.StatusNoContent:
		return opened{empty: true}, nil
	case http.StatusPreconditionFailed:
		return opened{changed: true, etag: unquote(s.resp.Header.Get("ETag"))}, nil
	case http.StatusRequestedRangeNotSatisfiable:
		if sp == probeSpan && !ver.known() { // an empty file has no block 0
			return opened{tooShort: true}, nil
		}
	}
	if err := statusError(s.resp, s.url); err != nil {
		return opened{}, err
	}
	if mt, _, _ := mime.ParseMediaType(s.resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return opened{}, fmt.Errorf("%w: %s answered with %q, not an event stream", ErrProtocol, s.url, mt)
	}
	s.body = &idleReader{r: s.resp.Body, d: d.cfg.idle, timer: s.watch}
	s.events = sse.NewReader(s.body)
	s.events.SetMaxEventSize(2*chunker.MaxBlockSize + 4096)
	for {
		ev, err := d.nextEvent(s)
		if err != nil {
			return opened{}, err
		}
		switch ev.Type {
		case chunker.EventMeta:
		case chunker.EventBlock, chunker.EventEnd:
			return opened{}, fmt.Errorf("%w: %s sent %s before its meta event", ErrProtocol, s.url, ev.Type)
		default:
			continue // for newer clients
		}
		if err := json.Unmarshal(ev.Data, &s.meta); err != nil {
			return opened{}, fmt.Errorf("%w: bad meta event", errCorrupt)
		}
		m := s.meta
		if chunker.CheckBlockSize(m.BlockSize) != nil || m.Size < 0 || m.ETag == "" {
			return opened{}, fmt.Errorf("%w: meta event %s", ErrProtocol, ev.Data)
		}
		if ver.known() && (m.ETag != ver.ETag || m.Size != ver.Size || m.BlockSize != ver.BlockSize) {
			return opened{changed: true, etag: m.ETag}, nil
		}
		if m.Start != next {
			return opened{}, fmt.Errorf("%w: stream starts at %d, want %d", ErrProtocol, m.Start, next)
		}
		s.metaAt = s.body.n
		return opened{s: s}, nil
	}
}

// nextEvent reads the stream's next event and keeps the server's retry
// hint.
func (d *download) nextEvent(s *stream) (sse.Event, error) {
	ev, err := s.events.Next()
	if ms, ok := s.events.Retry(); ok {
		d.hint.set(ms)
	}
	switch {
	case err == nil:
		return ev, nil
	case context.Cause(s.ctx) == errIdle:
		return ev, errIdle
	case errors.Is(err, io.EOF):
		return ev, errCut
	}
	return ev, netError(s.ctx, err)
}

// unquote returns an ETag header's value without its quotes or weak mark.
func unquote(etag string) string {
	return strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
}

// attempt reads the blocks of one stream for a worker.
type attempt struct {
	w          *worker
	s          *stream
	sp         span
	next       int64 // offset of the block expected next
	progressed bool  // a block was written
	badInARow  int
}

// run reads blocks until the span is done, returning nil, or the stream
// fails.
func (a *attempt) run() error {
	d, w := a.w.d, a.w
	for {
		ev, err := d.nextEvent(a.s)
		if err != nil {
			return err
		}
		switch ev.Type {
		case chunker.EventBlock:
			if err := a.block(ev); err != nil {
				return err
			}
			if a.next >= a.sp.end && !w.needEnd(a.sp) {
				return nil // the span is complete and the digests are known, or will come with another
			}
		case chunker.EventEnd:
			a.s.ended = true
			if a.next < a.sp.end {
				return fmt.Errorf("%w: end event before block %d", errCut, a.next)
			}
			var end chunker.End
			if err := json.Unmarshal(ev.Data, &end); err != nil || end.Size != w.ver.Size {
				// The blocks are all here; the file's digests come from
				// the manifest instead.
				d.logf("the end event is damaged (%.80q); the manifest will tell the file's digests", ev.Data)
				return nil
			}
			w.pass.setEnd(end)
			return nil
		}
		// Other event types are for newer clients: ignored.
	}
}

// partial reports whether bytes came after the meta event, if no whole
// block: the connection was delivering when it was cut.
func (a *attempt) partial() bool { return a.s.body.n > a.s.metaAt }

// block verifies one block event and hands the block to the sink, or drops
// it to be fetched again after the pass.
func (a *attempt) block(ev sse.Event) error {
	d, ver := a.w.d, a.w.ver
	if a.next >= a.sp.end {
		return fmt.Errorf("%w: a block past the end of the span", ErrProtocol)
	}
	sink := a.w.pass.sink
	if err := sink.failed(); err != nil {
		return err
	}
	i := a.next / int64(ver.BlockSize)
	_, n := chunker.Span(ver.Size, ver.BlockSize, i)
	f, err := chunker.ParseFrame(ev.Data)
	if err == nil && ev.ID != chunker.FormatOffset(f.Offset) {
		err = fmt.Errorf("event id %q for a block at %d", ev.ID, f.Offset)
	}
	if err == nil && f.Offset > a.next && f.Offset < a.sp.end && f.Offset%int64(ver.BlockSize) == 0 {
		// Events in between were lost (a damaged event name, say): those
		// blocks stay missing and are fetched after the pass.
		skipped := (f.Offset - a.next) / int64(ver.BlockSize)
		d.logf("%d blocks from offset %d did not arrive intact; fetching them again", skipped, a.next)
		d.meter.refetched.Add(skipped)
		a.next, i = f.Offset, f.Offset/int64(ver.BlockSize)
		_, n = chunker.Span(ver.Size, ver.BlockSize, i)
	}
	if err == nil && f.Offset != a.next {
		err = fmt.Errorf("block at %d, want %d", f.Offset, a.next)
	}
	if err == nil && f.Length != n {
		err = fmt.Errorf("block at %d of %d bytes does not fit the file", f.Offset, f.Length)
	}
	buf := sink.buffer(ver.BlockSize)
	var raw []byte
	var inBuf bool
	if err == nil {
		raw, inBuf, err = a.w.dec.DecodeInto(buf.data, f)
	}
	if want, ok := ver.manifestHash(i); err == nil && ok && want != f.Hash {
		err = fmt.Errorf("%w: block at %d", errDisagrees, f.Offset)
		a.w.pass.disagree()
	}
	if err != nil {
		sink.recycle(buf)
		return a.drop(n, err)
	}
	if !inBuf {
		raw = append(buf.data[:0], raw...) // decoded elsewhere: copy
	}
	buf.i, buf.off, buf.hash, buf.data = i, f.Offset, f.Hash, raw
	sink.give(buf)
	a.next += int64(n)
	a.progressed = true
	a.badInARow = 0
	d.meter.fetched.Add(int64(n))
	return nil
}

// drop counts a block that failed verification and goes on to the next;
// too many in a row end the connection.
func (a *attempt) drop(n int, err error) error {
	d := a.w.d
	d.meter.refetched.Add(1)
	d.meter.fetched.Add(int64(n))
	d.logf("block at offset %d failed verification (%v); fetching it again", a.next, err)
	a.next += int64(n)
	if a.badInARow++; a.badInARow >= maxBadInARow {
		return fmt.Errorf("%w: %d blocks in a row: %w", errCorrupt, a.badInARow, err)
	}
	return nil
}
