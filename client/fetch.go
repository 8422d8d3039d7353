package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/client/sse"
	"golang.org/x/sync/errgroup"
)

// Internal outcomes of one attempt; none leaves the package.
var (
	errChanged = errors.New("client: remote version changed")
	errCut     = errors.New("client: stream ended before its end event")
	errIdle    = errors.New("client: connection idle")
	errCorrupt = errors.New("client: block failed verification")
	// errDisagrees: a block matched its own event's hash but not the
	// manifest's; the manifest itself may be what was damaged in transit.
	errDisagrees = errors.New("client: block disagrees with the manifest")
	// errReopen: the attempt ended by design, to ask for its span anew.
	errReopen = errors.New("client: reopening the stream")
)

// probeSpan is the first span of a fresh download with more than one
// stream: block 0 alone (Range: bytes=0-0), whose meta event tells the size
// before the rest is split among the streams. A whole-file stream cut back
// to its share, as it was before, had the server write a socket buffer's
// worth past the share (4-5 MB per download).
var probeSpan = span{0, 1}

// span is a half-open byte interval [start, end) of block offsets.
type span struct{ start, end int64 }

// fetchSpans fetches the given spans over opts.Parallel streams. A nil
// spans means the whole file, whose size the first stream's meta event
// tells; that stream starts at once and the others join when it has.
func (d *download) fetchSpans(ctx context.Context, spans []span) (err error) {
	d.sink = d.startSink()
	defer func() {
		if serr := d.sink.close(); err == nil {
			err = serr
		}
		d.sink = nil
	}()
	g, gctx := errgroup.WithContext(ctx)
	if spans == nil {
		first := span{0, -1}
		if d.opts.Parallel > 1 {
			first = probeSpan
		}
		g.Go(func() error { return d.fetchSpan(gctx, first, g) })
		return g.Wait()
	}
	for _, share := range split(spans, d.opts.Parallel, int64(d.st.BlockSize)) {
		g.Go(func() error {
			for _, sp := range share {
				if err := d.fetchSpan(gctx, sp, nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// split cuts spans into n shares of about equal bytes, at block boundaries.
func split(spans []span, n int, bs int64) [][]span {
	var total int64
	for _, s := range spans {
		total += s.end - s.start
	}
	per := (total/int64(n) + bs - 1) / bs * bs
	if n <= 1 || per == 0 {
		return [][]span{spans}
	}
	var shares [][]span
	var cur []span
	var size int64
	for _, s := range spans {
		for s.start < s.end {
			take := min(s.end-s.start, per-size)
			cur = append(cur, span{s.start, s.start + take})
			s.start += take
			if size += take; size >= per {
				shares, cur, size = append(shares, cur), nil, 0
			}
		}
	}
	if len(cur) > 0 {
		shares = append(shares, cur)
	}
	return shares
}

// fetchSpan fetches one span, reconnecting until it is complete or the
// retries run out. sp.end < 0 means the whole file, size not yet known;
// probeSpan is block 0 of a fresh --parallel download, after which g, if the
// file turns out larger than a block, takes the streams for the rest.
func (d *download) fetchSpan(ctx context.Context, sp span, g *errgroup.Group) error {
	next := sp.start
	budget := failureBudget{d: d}
	disagreed := false
	for {
		if sp.end >= 0 && next >= sp.end && next > sp.start {
			return nil
		}
		if err := budget.wait(ctx); err != nil {
			return err
		}
		a := attempt{d: d, sp: sp, next: next, g: g}
		err := a.run(ctx)
		sp, next, g = a.sp, a.next, a.g
		if err == nil {
			return nil
		}
		if errors.Is(err, errReopen) {
			continue
		}
		if a.progressed {
			budget.reset()
		}
		budget.delivering = a.progressed || a.partial
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		switch {
		case errors.Is(err, errChanged):
			return errChanged
		case errors.Is(err, errDisagrees) && !disagreed:
			// Ask once for the manifest again before blaming the block.
			disagreed = true
			if err := d.refreshManifest(ctx); err != nil {
				return err
			}
		default:
			if err := budget.record(err); err != nil {
				return err
			}
		}
		d.stats.reconnects.Add(1)
		d.logf("%v; reconnecting at offset %d (attempt %d)", err, next, budget.failures+budget.stalls+1)
		d.progress("")
	}
}

// failureBudget counts the attempts that failed in a row, for a stream or
// a manifest request, and decides whether another may follow and when.
type failureBudget struct {
	d                *download
	failures, stalls int
	retryAfter       time.Duration // the server's Retry-After of the last failure
	// delivering: the last attempt was receiving its stream when it was cut,
	// if only part of a block (a proxy cutting every few hundred KB). It
	// still counts as a failure, so a link that never lets a whole block
	// through is given up on, but the next attempt follows at once.
	delivering bool
}

// reset starts counting afresh: the last attempt made progress.
func (b *failureBudget) reset() { b.failures, b.stalls = 0, 0 }

// record takes a failed attempt. It returns nil if another may follow, or
// the error to give up with: a final status or local error, two stalls in a
// row, or more failures than the retries allow.
func (b *failureBudget) record(err error) error {
	b.retryAfter = 0
	var he *HTTPError
	switch {
	case errors.Is(err, errIdle), errors.Is(err, context.DeadlineExceeded):
		if b.stalls++; b.stalls >= 2 {
			return fmt.Errorf("%w: no data for %s twice in a row from %s", ErrTimeout, b.d.opts.IdleTimeout, b.d.url)
		}
	case errors.As(err, &he) && !retryableStatus(he.Status):
		return err
	case errors.Is(err, ErrDisk), errors.Is(err, ErrUsage), errors.Is(err, ErrRemoteChanged):
		return err
	default:
		if errors.As(err, &he) {
			b.retryAfter = he.retryAfter
		}
		if b.failures++; b.failures > b.d.opts.Retries {
			return giveUp(err, b.d.opts.Retries)
		}
	}
	return nil
}

// wait sleeps the backoff due after the failures so far, if any.
func (b *failureBudget) wait(ctx context.Context) error {
	if b.failures+b.stalls == 0 {
		return nil
	}
	select {
	case <-time.After(b.delay()):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// delay returns the wait before the next attempt.
func (b *failureBudget) delay() time.Duration {
	n := b.failures + b.stalls
	if b.delivering && b.stalls == 0 {
		n = 1
	}
	return b.d.backoff(n, b.retryAfter)
}

// giveUp turns the last failure into the error the caller sees.
func giveUp(err error, retries int) error {
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("%w: blocks kept failing verification after %d retries: %w", ErrIntegrity, retries, err)
	case errors.Is(err, ErrProtocol):
		return err
	}
	return fmt.Errorf("%w: giving up after %d retries: %w", ErrNetwork, retries, err)
}

// backoff returns the wait before the n-th attempt in a row that follows a
// failure. A connection that was delivering is retried at once (a little
// jitter apart); repeated failures back off exponentially from the server's
// retry: hint, up to 15 s, with jitter. A server's Retry-After wins.
func (d *download) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, 60*time.Second)
	}
	if n <= 1 {
		return time.Duration(rand.Int64N(int64(100 * time.Millisecond)))
	}
	base := time.Duration(d.retryMs.Load()) * time.Millisecond
	if base <= 0 {
		base = time.Second
	}
	wait := min(base<<min(n-2, 10), 15*time.Second)
	return wait/2 + time.Duration(rand.Int64N(int64(wait)))
}

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// attempt is one connection of fetchSpan.
type attempt struct {
	d          *download
	sp         span
	next       int64
	g          *errgroup.Group
	progressed bool // a block was written
	partial    bool // bytes came after the meta event, if no whole block
}

func (a *attempt) run(ctx context.Context) error {
	d := a.d
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q := url.Values{}
	if d.st.ETag != "" {
		q.Set("v", d.st.ETag)
	}
	if !d.opts.NoCompression {
		q.Set("encoding", "s2,zstd,gzip")
	}
	u := d.ep.sse(q)
	req, err := d.newRequest(actx, u)
	if err != nil {
		return err
	}
	if a.sp.end >= 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(a.sp.start, 10)+"-"+strconv.FormatInt(max(a.sp.end-1, 0), 10))
	}
	if a.next > a.sp.start {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(a.next-int64(d.st.BlockSize), 10))
	}
	// The idle watchdog runs from the request on: a server that never
	// answers stalls the same as one that stops sending.
	watch := time.AfterFunc(d.opts.IdleTimeout, func() { cancel(errIdle) })
	defer watch.Stop()
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return netError(actx, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil // nothing left in this span
	case http.StatusPreconditionFailed:
		return errChanged
	case http.StatusRequestedRangeNotSatisfiable:
		if a.sp == probeSpan && d.st.ETag == "" { // an empty file has no block 0
			a.sp = span{0, -1}
			return errReopen
		}
	}
	if err := statusError(resp, u); err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("%w: %s answered with %q, not an event stream", ErrProtocol, u, mt)
	}
	body := &idleReader{r: resp.Body, d: d.opts.IdleTimeout, timer: watch}
	r := sse.NewReader(body)
	metaAt := int64(-1) // body bytes read when the meta event came
	r.SetMaxEventSize(2*chunker.MaxBlockSize + 4096)
	dec := chunker.NewDecoder()
	for {
		ev, err := r.Next()
		if ms, ok := r.Retry(); ok {
			d.retryMs.Store(ms.Milliseconds())
		}
		if err != nil {
			a.partial = metaAt >= 0 && body.n > metaAt
			if context.Cause(actx) == errIdle {
				return errIdle
			}
			if errors.Is(err, io.EOF) {
				return errCut
			}
			return netError(actx, err)
		}
		switch ev.Type {
		case chunker.EventMeta:
			if err := a.meta(ctx, ev.Data); err != nil {
				return err
			}
			metaAt = body.n
		case chunker.EventBlock:
			if a.sp.end >= 0 && a.next >= a.sp.end {
				return nil // a whole-file stream cut short to its share
			}
			if err := a.block(ev, dec); err != nil {
				return err
			}
			if a.sp.end >= 0 && a.next >= a.sp.end && (d.man != nil || d.haveEnd() || a.sp == d.probed) {
				return nil // the span is complete and the digests are known, or will come with another
			}
		case chunker.EventEnd:
			var end chunker.End
			if err := json.Unmarshal(ev.Data, &end); err != nil || end.Size != d.st.Size {
				return fmt.Errorf("%w: bad end event", errCorrupt)
			}
			if a.sp.end < 0 || a.next < a.sp.end {
				return fmt.Errorf("%w: end event before block %d", errCut, a.next)
			}
			return d.setEnd(end)
		}
		// Other event types are for newer clients: ignored.
	}
}

// meta checks the meta event; on a whole-file stream it adopts the version.
// New streams it starts run under ctx, the context of the whole fetch.
func (a *attempt) meta(ctx context.Context, data []byte) error {
	d := a.d
	var m chunker.Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: bad meta event", errCorrupt)
	}
	if chunker.CheckBlockSize(m.BlockSize) != nil || m.Size < 0 || m.ETag == "" {
		return fmt.Errorf("%w: meta event %s", ErrProtocol, data)
	}
	if d.st.ETag == "" { // the first stream of a fresh download
		d.st = state{URL: d.url, ETag: m.ETag, Size: m.Size, BlockSize: m.BlockSize}
		if err := checkSpace(d.opts.Output, m.Size); err != nil {
			return err
		}
		if err := d.openPart(m.Size); err != nil {
			return err
		}
		if err := writeState(d.opts.Output, d.st); err != nil {
			return err
		}
		d.progress("downloading")
		bs := int64(m.BlockSize)
		if a.sp == probeSpan && a.g != nil && m.Size > bs {
			// This stream takes block 0; --parallel streams share the rest.
			a.sp, d.probed = span{0, bs}, span{0, bs}
			for _, share := range split([]span{{bs, m.Size}}, d.opts.Parallel, bs) {
				a.g.Go(func() error { return d.fetchSpan(ctx, share[0], nil) })
			}
		} else {
			a.sp = span{0, m.Size}
		}
		a.g = nil
	} else if m.ETag != d.st.ETag || m.Size != d.st.Size || m.BlockSize != d.st.BlockSize {
		return errChanged
	}
	if m.Start != a.next && !(a.next == 0 && m.Start == a.sp.start) {
		return fmt.Errorf("%w: stream starts at %d, want %d", ErrProtocol, m.Start, a.next)
	}
	return nil
}

// block verifies one block event and writes the block.
func (a *attempt) block(ev sse.Event, dec *chunker.Decoder) error {
	d := a.d
	f, err := chunker.ParseFrame(ev.Data)
	if err == nil && ev.ID != strconv.FormatInt(f.Offset, 10) {
		err = fmt.Errorf("event id %q for a block at %d", ev.ID, f.Offset)
	}
	if err == nil && f.Offset != a.next {
		err = fmt.Errorf("block at %d, want %d", f.Offset, a.next)
	}
	if serr := d.sink.failed(); serr != nil {
		return serr
	}
	buf := d.sink.buffer(d.st.BlockSize)
	var raw []byte
	if err == nil {
		i := f.Offset / int64(d.st.BlockSize)
		if _, n := chunker.Span(d.st.Size, d.st.BlockSize, i); f.Offset >= d.st.Size || f.Length != n {
			err = fmt.Errorf("block at %d of %d bytes does not fit the file", f.Offset, f.Length)
		} else if raw, err = dec.DecodeInto(buf.data, f); err == nil {
			if want, ok := d.manifestHash(i); ok && want != f.Hash {
				err = fmt.Errorf("%w: block at %d", errDisagrees, f.Offset)
			}
		}
	}
	if err != nil {
		d.sink.recycle(buf)
		d.stats.refetched.Add(1)
		d.stats.fetched.Add(int64(f.Length))
		d.logf("block at offset %d failed verification (%v); fetching it again", a.next, err)
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if &raw[:1][0] != &buf.data[:1][0] {
		buf.data = append(buf.data[:0], raw...) // decoded elsewhere: copy
	} else {
		buf.data = raw
	}
	buf.off = f.Offset
	d.sink.give(buf)
	a.next = f.Offset + int64(len(raw))
	a.progressed = true
	d.stats.fetched.Add(int64(len(raw)))
	return nil
}

// feedSum adds a block to the in-order whole-file xxh3-128 and reports
// whether it was in order, or gives the digests up when blocks arrive out of
// order (the file is hashed at the end then).
func (d *download) feedSum(off int64, raw []byte) bool {
	d.sumMu.Lock()
	defer d.sumMu.Unlock()
	if d.sum == nil {
		return false
	}
	if off != d.next {
		d.sum, d.sha = nil, nil
		return false
	}
	d.sum.Write(raw)
	d.next += int64(len(raw))
	return true
}

func (d *download) haveEnd() bool {
	d.endMu.Lock()
	defer d.endMu.Unlock()
	return d.end != nil
}

// setEnd records the digests of an end event; two that differ mean the
// file changed between streams.
func (d *download) setEnd(end chunker.End) error {
	d.endMu.Lock()
	defer d.endMu.Unlock()
	if d.end != nil && *d.end != end {
		return errChanged
	}
	d.end = &end
	return nil
}

func (d *download) newRequest(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	for k, vs := range d.opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Accept", "text/event-stream, application/json")
	return req, nil
}

// statusError returns nil for 200 and an *HTTPError for anything else.
func statusError(resp *http.Response, u string) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	he := &HTTPError{URL: u, Status: resp.StatusCode}
	var body struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body) == nil {
		he.Message = body.Error
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			he.retryAfter = time.Duration(n) * time.Second
		}
	}
	return he
}

// netError classifies a failed request or read.
func netError(ctx context.Context, err error) error {
	if context.Cause(ctx) == errIdle {
		return errIdle
	}
	return fmt.Errorf("%w: %w", ErrNetwork, err)
}

// retry runs fn until it reports done, retrying failures like a stream does.
func (d *download) retry(ctx context.Context, fn func(context.Context) (bool, error)) error {
	budget := failureBudget{d: d}
	for {
		actx, cancel := context.WithTimeoutCause(ctx, d.opts.IdleTimeout, errIdle)
		ok, err := fn(actx)
		cancel()
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := budget.record(err); err != nil {
			return err
		}
		d.logf("%v; retrying", err)
		if err := budget.wait(ctx); err != nil {
			return err
		}
	}
}

// idleReader cancels a request when no bytes arrive for a while.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
	n     int64 // bytes read
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
		ir.n += int64(n)
	}
	return n, err
}

// manifestHash returns the manifest's hash of block i, if the manifest of
// the version being downloaded is known.
func (d *download) manifestHash(i int64) (uint64, bool) {
	d.manMu.Lock()
	defer d.manMu.Unlock()
	if d.man == nil || d.man.ETag != d.st.ETag || i >= int64(len(d.man.Hashes)) {
		return 0, false
	}
	return uint64(d.man.Hashes[i]), true
}

// refreshManifest fetches the manifest again. The same version replaces the
// one held (which may have been damaged in transit); another version means
// the file changed.
func (d *download) refreshManifest(ctx context.Context) error {
	m, err := d.requestManifest(ctx)
	if err != nil {
		return err
	}
	if m.ETag != d.st.ETag {
		return errChanged
	}
	d.manMu.Lock()
	d.man = m
	d.manMu.Unlock()
	d.logf("fetched the manifest again: a block disagreed with it")
	return nil
}
