package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// Following a live file (Options.Follow, docs/PROTOCOL.md "Live files"):
// one stream with ?follow=1 brings the blocks in order as the server's file
// grows, and they are written to the partial file as they come; the end
// event, once the writer is done, gives the final size and digests. A cut
// reconnects pinned to the live etag after the last block held; a restart
// checks the partial file against the live manifest first. Once the file
// is complete anything left to repair is an ordinary download's work.

// followHeaderWait bounds the wait for the answer to a follow request: a
// server holds the request of a file that does not exist yet for up to its
// --follow-wait (10 minutes unless set otherwise) before it answers.
const followHeaderWait = 15 * time.Minute

// liveFollow is what a follow holds: every byte before next is on disk
// and verified, block by block.
type liveFollow struct {
	etag string // the live etag, once a meta event told it
	bs   int
	next int64
	// sum is the whole file's digests, fed in order, while every block
	// went through this download; nil after a restart mid-file.
	sum   *manifest.Summer
	short bool         // the short last block came: only the end event is left
	end   *chunker.End // the end event's
}

// followStart begins a follow, checking a partial file first if there is
// one.
func (d *download) followStart(ctx context.Context) (stateFn, error) {
	if d.part.exists() {
		d.res.Resumed = true
		return d.followResume, nil
	}
	d.live = &liveFollow{sum: d.newSummer()}
	if _, err := d.part.openGrowing(0); err != nil {
		return nil, err
	}
	return d.followStream, nil
}

// followResume checks the partial file against the manifest of the file
// followed: its blocks complete so far, or all of them once complete, when
// an ordinary resume takes over.
func (d *download) followResume(ctx context.Context) (stateFn, error) {
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	saved := d.part.loadState()
	if saved != nil && saved.ETag != m.ETag && d.opts.Strict && !m.Live {
		return nil, fmt.Errorf("%w: %s was version %s, the server now has %s (--strict)", ErrRemoteChanged, d.url, saved.ETag, m.ETag)
	}
	d.rounds.saw(m.ETag)
	if !m.Live {
		d.logf("the file followed is complete; checking what %s holds against its manifest", d.part.path())
		d.reason = "remote complete"
		d.ver = versionOf(m)
		return d.verifyDisk, nil
	}
	have, err := d.part.openGrowing(-1)
	if err != nil {
		return nil, err
	}
	bs := int64(m.BlockSize)
	buf := make([]byte, bs)
	var next int64
	for i := range m.Blocks {
		if next+bs > have {
			break
		}
		if _, err := d.part.ReadAt(buf, next); err != nil || chunker.Hash(buf) != uint64(m.Hashes[i]) {
			break
		}
		next += bs
	}
	if _, err := d.part.openGrowing(next); err != nil { // what did not verify goes
		return nil, err
	}
	d.live = &liveFollow{etag: m.ETag, bs: m.BlockSize, next: next}
	if next == 0 {
		d.live.sum = d.newSummer()
	}
	if err := d.part.saveState(state{URL: d.url, ETag: m.ETag, BlockSize: m.BlockSize}); err != nil {
		return nil, err
	}
	d.meter.reused.Add(next)
	d.meter.done.Store(next)
	d.logf("following again from offset %d (%d blocks on disk verified against the live manifest)", next, next/bs)
	return d.followStream, nil
}

// followStream reads the live stream, reconnecting after cuts, until its
// end event.
func (d *download) followStream(ctx context.Context) (stateFn, error) {
	lv := d.live
	budget := d.newBudget()
	d.meter.report("following")
	for {
		s, changed, err := d.openFollow(ctx)
		switch {
		case changed:
			return d.followChanged, nil
		case err == nil && !s.meta.Live && lv.next == 0 && lv.etag == "":
			// Nobody writes it: an ordinary download, this stream its first.
			d.logf("%s is complete; downloading it as usual", d.url)
			d.plan.first, d.plan.probe = s, false
			return d.begin, nil
		case err == nil && !s.meta.Live:
			s.close()
			return d.followChanged, nil
		case err == nil:
			before := lv.next
			err = d.followBlocks(s)
			s.close()
			if err == nil {
				return d.followWhole, nil
			}
			if lv.next > before {
				budget.reset()
			}
			budget.delivering = lv.next > before
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err := budget.record(err); err != nil {
			return nil, err
		}
		d.meter.reconnects.Add(1)
		d.logf("%v; reconnecting at offset %d (attempt %d)", err, lv.next, budget.failures+budget.stalls+1)
		if err := budget.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// openFollow asks for the live stream from the block after the last one
// held, pinned to the live etag once known, and reads its meta event.
// changed reports a 412 or another version's meta.
func (d *download) openFollow(ctx context.Context) (s *stream, changed bool, err error) {
	lv := d.live
	ctx, cancel := context.WithCancelCause(ctx)
	u := d.ep.sse(d.streamQuery(lv.etag, true))
	req, err := d.newRequest(ctx, u)
	if err != nil {
		cancel(nil)
		return nil, false, err
	}
	if lv.next > 0 {
		req.Header.Set(chunker.HeaderLastEventID, chunker.FormatOffset((lv.next-1)/int64(lv.bs)*int64(lv.bs)))
	}
	// The server may hold the request until the file appears; after the
	// answer, the idle timeout applies as everywhere.
	watch := time.AfterFunc(max(followHeaderWait, d.cfg.idle), func() { cancel(errIdle) })
	resp, err := d.cfg.hc.Do(req)
	if err != nil {
		watch.Stop()
		cancel(nil)
		return nil, false, netError(ctx, err)
	}
	watch.Reset(d.cfg.idle)
	s = &stream{ctx: ctx, url: u, resp: resp, watch: watch, cancel: cancel}
	o, err := d.answer(s, version{}, wholeSpan, lv.next)
	switch {
	case err == nil && o.s != nil && lv.etag != "" && s.meta.ETag != lv.etag:
		d.rounds.saw(s.meta.ETag)
		o = opened{changed: true}
	case err == nil && o.s != nil && s.meta.Live:
		if err := chunker.CheckBlockSize(s.meta.BlockSize); err != nil || lv.bs != 0 && lv.bs != s.meta.BlockSize {
			o, err = opened{changed: true}, nil
			break
		}
		if lv.etag == "" {
			lv.etag, lv.bs = s.meta.ETag, s.meta.BlockSize
			d.rounds.saw(lv.etag)
			if err := d.part.saveState(state{URL: d.url, ETag: lv.etag, BlockSize: lv.bs}); err != nil {
				s.close()
				return nil, false, err
			}
		}
	}
	if o.s == nil {
		s.close()
		if o.changed {
			d.rounds.saw(o.etag)
		}
		return nil, o.changed, err
	}
	return s, false, nil
}

// followBlocks writes the blocks of a live stream in order until its end
// event (nil) or a failure.
func (d *download) followBlocks(s *stream) error {
	lv := d.live
	bs := int64(lv.bs)
	dec := chunker.NewDecoder()
	buf := make([]byte, bs+8)
	for {
		ev, err := d.nextEvent(s)
		if err != nil {
			return err
		}
		switch ev.Type {
		case chunker.EventBlock:
			f, err := chunker.ParseFrame(ev.Data)
			switch {
			case err != nil, ev.ID != chunker.FormatOffset(f.Offset):
				d.meter.refetched.Add(1)
				return fmt.Errorf("%w: a damaged block event after offset %d", errCorrupt, lv.next)
			case lv.short || f.Offset != lv.next || f.Length <= 0 || int64(f.Length) > bs:
				return fmt.Errorf("%w: block at %d of %d bytes, want one at %d", ErrProtocol, f.Offset, f.Length, lv.next)
			}
			raw, _, err := dec.DecodeInto(buf, f)
			if err != nil {
				d.meter.refetched.Add(1)
				return fmt.Errorf("%w: block at %d: %w", errCorrupt, f.Offset, err)
			}
			if _, err := d.part.WriteAt(raw, f.Offset); err != nil {
				return diskError(err)
			}
			if lv.sum != nil {
				lv.sum.Write(raw)
			}
			lv.next += int64(len(raw))
			lv.short = int64(len(raw)) < bs
			d.meter.fetched.Add(int64(len(raw)))
			d.meter.addDone(len(raw))
		case chunker.EventEnd:
			s.ended = true
			var end chunker.End
			if err := json.Unmarshal(ev.Data, &end); err != nil || end.Size != lv.next {
				return fmt.Errorf("%w: end event %.80q after %d bytes", ErrProtocol, ev.Data, lv.next)
			}
			lv.end = &end
			return nil
		}
	}
}

// followChanged starts over on the version the file followed turned into,
// keeping the blocks on disk that still match, or stops with Strict.
func (d *download) followChanged(ctx context.Context) (stateFn, error) {
	if d.opts.Strict {
		return nil, fmt.Errorf("%w: %s was truncated or replaced while it was followed (--strict)", ErrRemoteChanged, d.url)
	}
	if err := d.rounds.next(d.cfg.retries, d.url); err != nil {
		return nil, err
	}
	d.logf("the file followed was truncated or replaced; checking what is on disk against it")
	if err := sleep(ctx, d.hint.backoff(d.rounds.n, 0)); err != nil {
		return nil, err
	}
	return d.followResume, nil
}

// followWhole checks the whole file against the end event's digests.
func (d *download) followWhole(ctx context.Context) (stateFn, error) {
	lv := d.live
	d.meter.size.Store(lv.next)
	d.meter.report("finishing")
	var got manifest.Digests
	if lv.sum != nil {
		got = lv.sum.Digests()
	} else {
		var err error
		if got, err = digestFile(ctx, d.part, lv.next, d.newSummer()); err != nil {
			return nil, err
		}
	}
	d.ver = version{ETag: lv.etag, Size: lv.next, BlockSize: lv.bs}
	want := manifest.Digests{XXH3128: lv.end.XXH3128, SHA256: lv.end.SHA256}
	if !got.Match(want) {
		// Every block verified, the whole did not: a rewrite in place of
		// blocks already sent. The finished file's manifest says which.
		d.logf("whole-file digest does not match; checking every block against the manifest")
		m, err := d.fetchManifest(ctx)
		if err != nil {
			return nil, err
		}
		if m.Live {
			return d.followChanged, nil
		}
		d.ver, d.repaired, d.reason = versionOf(m), true, "repairing"
		return d.verifyDisk, nil
	}
	if err := d.checkChecksum(got.SHA256); err != nil {
		return nil, err
	}
	d.res.Size, d.res.SHA256, d.res.XXH3128, d.res.ETag = lv.next, got.SHA256, got.XXH3128, lv.etag
	return d.finish, nil
}

// manifestQuery is the query of the download's manifest requests.
func (d *download) manifestQuery() url.Values {
	if d.opts.Follow {
		return url.Values{chunker.QueryFollow: {"1"}}
	}
	return nil
}
