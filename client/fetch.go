package client

import (
	"context"
	"errors"
	"sync"

	"github.com/ferry-dev/ferry/chunker"
)

// span is a half-open byte interval [start, end) of block offsets; end < 0
// means up to the end of a file whose size is not yet known.
type span struct{ start, end int64 }

// probeSpan is what the first stream of a fresh download with more than
// one stream asks for: block 0 alone (Range: bytes=0-0), whose meta event
// tells the size before the rest is split among the streams.
var probeSpan = span{0, 1}

// wholeSpan asks for the whole file, from block 0, without a Range.
var wholeSpan = span{0, -1}

// plan is the work of one pass: a share of spans for each stream.
type plan struct {
	shares [][]span
	first  *stream // already open for shares[0][0], or nil
	probe  bool    // shares[0][0] is block 0 after a probe: it does not wait for the end event
}

// pass fetches the spans of a plan over one stream each, for one version.
// It is the one place the streams report to: the end event's digests, a
// version change, a block that disagreed with the manifest, a failure. Any
// of the last three ends the pass for all streams, except a disagreement,
// whose block is dropped like any bad block.
type pass struct {
	ver    version
	sink   *sink
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	end       *chunker.End
	changed   bool
	etag      string // the version the remote turned to, if it said
	disagreed bool
	err       error
}

// errPassOver is the cause of a pass's context when one of its streams
// ended it for all.
var errPassOver = errors.New("client: pass over")

// runPass fetches the spans of pl and returns what the streams reported.
// When it returns, every block they verified is on disk and in d.book.
func (d *download) runPass(ctx context.Context, pl plan) *pass {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pass{ver: d.ver, cancel: cancel, end: d.ver.end}
	p.sink = startSink(d.part, d.book, d.order, d.meter.addDone)
	if s := pl.first; s != nil {
		stop := context.AfterFunc(pctx, func() { s.cancel(context.Cause(pctx)) })
		defer stop()
	}
	var wg sync.WaitGroup
	for k, share := range pl.shares {
		w := &worker{d: d, ver: d.ver, pass: p, dec: chunker.NewDecoder(), probe: k == 0 && pl.probe}
		var first *stream
		if k == 0 {
			first = pl.first
		}
		wg.Go(func() {
			if err := w.run(pctx, share, first); err != nil {
				p.fail(err)
			}
		})
	}
	wg.Wait()
	if err := p.sink.close(); err != nil {
		p.fail(err)
	}
	return p
}

func (p *pass) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil && !p.changed {
		p.err = err
	}
	p.cancel(errPassOver)
}

// changedTo reports that the remote has another version, etag if known.
func (p *pass) changedTo(etag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.changed {
		p.changed, p.etag = true, etag
	}
	p.cancel(errPassOver)
}

// setEnd records the digests of an end event; two that differ mean the
// file changed between streams.
func (p *pass) setEnd(end chunker.End) {
	p.mu.Lock()
	if p.end == nil || *p.end == end {
		p.end = &end
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.changedTo("")
}

func (p *pass) haveEnd() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end != nil
}

func (p *pass) disagree() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disagreed = true
}

// worker is one stream of a pass: it fetches its share of spans in turn,
// reconnecting until each is done or its failures outlast the retries.
type worker struct {
	d     *download
	ver   version // a copy: the coordinator's does not change during the pass
	pass  *pass
	dec   *chunker.Decoder
	probe bool
}

func (w *worker) run(ctx context.Context, share []span, first *stream) error {
	for _, sp := range share {
		if err := w.fetchSpan(ctx, sp, first); err != nil || ctx.Err() != nil {
			return err
		}
		first = nil
	}
	return nil
}

// fetchSpan fetches one span, starting with stream s if it is open.
func (w *worker) fetchSpan(ctx context.Context, sp span, s *stream) error {
	d := w.d
	next := sp.start
	budget := d.newBudget()
	for {
		if next >= sp.end && next > sp.start {
			return nil // cut after the last block: the digests come from elsewhere
		}
		var err error
		if s == nil {
			if err := budget.wait(ctx); err != nil {
				return nil // the pass or the download is over
			}
			var o opened
			switch o, err = d.open(ctx, w.ver, sp, next); {
			case err != nil:
				budget.delivering = false
			case o.empty:
				return nil
			case o.changed:
				w.pass.changedTo(o.etag)
				return nil
			default:
				s = o.s
			}
		}
		if s != nil {
			a := attempt{w: w, s: s, sp: sp, next: next}
			err = a.run()
			s.close()
			s, next = nil, a.next
			if err == nil {
				return nil
			}
			if a.progressed {
				budget.reset()
			}
			budget.delivering = a.progressed || a.partial()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := budget.record(err); err != nil {
			return err
		}
		d.meter.reconnects.Add(1)
		d.logf("%v; reconnecting at offset %d (attempt %d)", err, next, budget.failures+budget.stalls+1)
		d.meter.report("")
	}
}

// needEnd reports whether a stream that delivered the last block of sp
// should wait for the end event: when no digests of the file are known yet.
func (w *worker) needEnd(sp span) bool {
	if w.probe && sp.start == 0 {
		return false // the other streams bring it
	}
	if _, ok := w.ver.digests(); ok {
		return false
	}
	return !w.pass.haveEnd()
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
