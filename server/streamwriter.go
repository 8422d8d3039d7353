package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// stream is one response of /sse/ after its headers are decided.
type stream struct {
	s      *Server
	f      *file
	span   span
	w      http.ResponseWriter
	rc     *http.ResponseController
	enc    *chunker.Encoder
	policy codecPolicy
	// rate reads the connection's delivery rate from the kernel (nil where
	// it cannot).
	rate   func() (float64, bool)
	live   bool  // a live file's stream: its meta says so
	bytes  int64 // bytes written, framing included
	blocks int64 // block events written
	// byEncoding counts the block events written in each encoding.
	byEncoding map[string]int64
	effort     effort
	better     int64 // zstd blocks made at the slower level
}

// run writes the stream and returns its outcome.
func (st *stream) run(r *http.Request) string {
	// The per-write deadlines below would outlive the stream on a kept-alive
	// connection (the server has no WriteTimeout to reset them): clear them.
	defer st.rc.SetWriteDeadline(time.Time{})

	if err := st.head(r); err != nil {
		return outcomeWriteFail
	}
	ctx := r.Context()
	d := st.digests(ctx)
	if outcome := st.blocksOf(ctx, d); outcome != "" {
		return outcome
	}
	end, outcome := st.end(ctx, d)
	if outcome != "" {
		return outcome
	}
	if err := st.write(chunker.AppendEvent(nil, "", chunker.EventEnd, end)); err != nil {
		return outcomeWriteFail
	}
	return outcomeComplete
}

// head writes the response headers, the retry field and the meta event.
func (st *stream) head(r *http.Request) error {
	f := st.f
	h := st.w.Header()
	setStreamHeaders(h, f.etag)
	if r.ProtoMajor == 1 && r.ProtoMinor >= 1 { // HTTP/1.0 has no chunks anyway
		// No chunked encoding: the body ends when the connection closes, as
		// the SSE specification suggests, and each block is one write. With
		// chunks, each block took three (the chunk header with the first
		// 4 KiB, the rest, and a 2-byte CRLF as a TCP segment of its own).
		// Go's server then closes the connection after the response; the
		// end event, not the close, tells a client the stream is complete.
		h.Set("Transfer-Encoding", "identity")
	}
	st.w.WriteHeader(http.StatusOK)

	head := []byte("retry: " + strconv.FormatInt(st.s.cfg.Retry.Milliseconds(), 10) + "\n")
	head = chunker.AppendEvent(head, "", chunker.EventMeta, chunker.Meta{
		Size: f.info.Size, BlockSize: st.s.cfg.BlockSize, ETag: f.etag, Start: st.span.start, End: st.span.end, Live: st.live,
	})
	return st.write(head)
}

// setStreamHeaders sets the headers of a stream's response. X-Accel-Buffering
// turns off nginx's response buffering, on by default, which would hold the
// blocks back.
func setStreamHeaders(h http.Header, etag string) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("ETag", `"`+etag+`"`)
}

// digests is where a stream's end event gets the whole-file digests: the
// cached manifest, a Summer fed as the blocks go by, or a manifest computed
// beside the stream. Exactly one is set.
type digests struct {
	cached  *manifest.Manifest
	sum     *manifest.Summer
	hashes  []manifest.Hash // beside sum: the manifest the stream builds
	weak    []uint32
	pending chan manifestResult
}

// digests decides where the end event's digests come from. No block waits
// for them. A whole-file stream hashes on its own goroutine, not the
// cache's: the cache's computation reads the whole file whether or not
// anyone stays for it, so a client that leaves after one block would cost a
// full read and SHA-256 of the file (and the first block of a 4 GiB file
// took 45 ms instead of 3 while such computations ran).
func (st *stream) digests(ctx context.Context) *digests {
	size, bs := st.f.info.Size, st.s.cfg.BlockSize
	if m, _ := st.s.cache.Lookup(st.f.key(bs)); m != nil {
		st.s.metrics.manifestHits.Inc()
		return &digests{cached: m}
	}
	st.s.metrics.manifestMisses.Inc()
	if st.span.start == 0 && st.span.end == size {
		n := chunker.Count(size, bs)
		return &digests{sum: manifest.NewSummer(), hashes: make([]manifest.Hash, 0, n), weak: make([]uint32, 0, n)}
	}
	d := &digests{pending: make(chan manifestResult, 1)}
	go func() { // exits when the manifest is ready or ctx is done
		m, err := st.s.manifestOf(ctx, st.f)
		d.pending <- manifestResult{m, err}
	}()
	return d
}

// blocksOf writes the span's block events, checking each block against
// the cached manifest and the file against its state when the stream
// began. It returns an outcome if the stream ends before its last block.
func (st *stream) blocksOf(ctx context.Context, d *digests) string {
	bs := st.s.cfg.BlockSize
	chunks, err := chunker.New(st.f.obj, st.f.info.Size, bs)
	if err != nil {
		return outcomeReadFail
	}
	for i := st.span.start / int64(bs); i < chunker.Count(st.span.end, bs); i++ {
		if outcome := st.stopped(ctx); outcome != "" {
			return outcome
		}
		began := time.Now()
		off, raw, err := chunks.Block(i)
		switch {
		case errors.Is(err, ErrOriginUnavailable):
			st.s.log.Warn("origin", "path", st.f.rel, "err", err)
			return outcomeReadFail
		case err != nil:
			return outcomeChanged // the file shrank, or the origin holds another version
		}
		hash := chunker.Hash(raw)
		if d.cached != nil && uint64(d.cached.Hashes[i]) != hash || !st.f.obj.Unchanged() {
			return outcomeChanged
		}
		if d.sum != nil {
			d.sum.Write(raw)
			d.hashes = append(d.hashes, manifest.Hash(hash))
			d.weak = append(d.weak, chunker.Weak(raw))
		}
		if err := st.block(off, raw, hash, began); err != nil {
			return outcomeWriteFail
		}
	}
	return ""
}

// block writes one block event in the codec the policy chooses and tells
// the policy what it cost.
func (st *stream) block(off int64, raw []byte, hash uint64, began time.Time) error {
	codec := st.policy.choose()
	// A zstd block the policy decided on (not a probe, which measures the
	// fastest level the policy weighs) may use the time the link leaves,
	// where the link is slow enough for the slower level's cost.
	fastNs := st.policy.costNs(chunker.Zstd)
	more := codec == chunker.Zstd && !st.policy.probed &&
		st.policy.outpaces(codec, betterCostFactor) && st.effort.more(len(raw), fastNs)
	st.enc.SetEffort(more)
	frame := st.enc.FrameWith(off, raw, hash, codec)
	var took time.Duration
	if codec != chunker.Identity {
		var n int
		took, n = st.enc.LastCompression()
		if more = st.enc.LastSlower(); more {
			st.effort.spent(len(raw), took, fastNs)
			st.policy.madeSlower(codec)
			st.better++
		} else {
			st.policy.compressed(codec, len(raw), n, took)
		}
	}
	wrote := time.Now()
	if err := st.write(frame); err != nil {
		return err
	}
	st.effort.wrote(len(frame), time.Since(wrote))
	// The whole block's wall time but for compressing: on a fast link
	// our own CPU, on a slow one mostly waiting for the socket.
	if more {
		// What the slower level took beyond the fastest is time the write
		// would have waited: the policy must still see the link as slow.
		took = min(took, time.Duration(fastNs*float64(len(raw))))
	}
	st.policy.wrote(len(frame), time.Since(began)-took)
	if st.rate != nil && st.blocks%4 == 0 {
		st.policy.linked(st.rate())
	}
	st.blocks++
	enc := st.enc.LastEncoding()
	st.byEncoding[enc]++
	st.s.metrics.blocks.WithLabelValues(enc).Inc()
	st.s.metrics.bytes.WithLabelValues(enc).Add(float64(len(frame)))
	return nil
}

// end returns the end event of a stream whose blocks were all sent, or an
// outcome if the stream ends without one. A whole-file stream puts the
// manifest it built into the cache.
func (st *stream) end(ctx context.Context, d *digests) (chunker.End, string) {
	f, size := st.f, st.f.info.Size
	switch {
	case d.cached != nil:
		return chunker.End{Size: size, XXH3128: d.cached.XXH3128, SHA256: d.cached.SHA256}, ""
	case d.sum != nil:
		sums := d.sum.Digests()
		bs := st.s.cfg.BlockSize
		st.s.cache.Put(f.key(bs), &manifest.Manifest{
			Version: manifest.Version, Path: f.rel, Size: size, BlockSize: bs, Blocks: int64(len(d.hashes)),
			MTime: f.info.ModTime.UTC(), ETag: f.etag, Hashes: d.hashes, Weak: d.weak, XXH3128: sums.XXH3128, SHA256: sums.SHA256,
		})
		return chunker.End{Size: size, XXH3128: sums.XXH3128, SHA256: sums.SHA256}, ""
	default:
		m, outcome := st.await(ctx, d.pending)
		if m == nil {
			return chunker.End{}, outcome
		}
		return chunker.End{Size: size, XXH3128: m.XXH3128, SHA256: m.SHA256}, ""
	}
}

type manifestResult struct {
	m   *manifest.Manifest
	err error
}

// await waits for the manifest computed beside a ranged stream, sending a
// heartbeat comment whenever the stream has been silent for a while.
func (st *stream) await(ctx context.Context, pending <-chan manifestResult) (*manifest.Manifest, string) {
	tick := time.NewTicker(st.s.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case res := <-pending:
			if res.err != nil || res.m.ETag != st.f.etag {
				return nil, outcomeChanged
			}
			return res.m, ""
		case <-tick.C:
			if err := st.write([]byte(": ping\n\n")); err != nil {
				return nil, outcomeWriteFail
			}
		case <-ctx.Done():
			return nil, outcomeGone
		case <-st.s.done:
			return nil, outcomeShutdown
		}
	}
}

// write sends p with a fresh write deadline and flushes it to the client.
func (st *stream) write(p []byte) error {
	deadline := time.Now().Add(st.s.cfg.WriteTimeout)
	if err := st.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	n, err := st.w.Write(p)
	st.bytes += int64(n)
	if err != nil {
		return err
	}
	return st.rc.Flush()
}
