package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/labstack/echo/v4"
)

// Stream outcomes, as logged.
const (
	outcomeComplete  = "complete"
	outcomeGone      = "client gone"
	outcomeChanged   = "file changed"
	outcomeShutdown  = "shutdown"
	outcomeWriteFail = "write failed"
	outcomeReadFail  = "read failed"
)

// handleStream serves GET /sse/<path>: a meta event, one block event per
// block of the requested span, and an end event with the file's digests.
// docs/PROTOCOL.md is the reference for every byte it writes.
func (s *Server) handleStream(c echo.Context) error {
	r := c.Request()
	f, err := s.open(r, "/sse/")
	if err != nil {
		return err
	}
	defer f.f.Close()
	if err := checkPin(r, f.etag); err != nil {
		return err
	}
	size, bs := f.info.Size(), s.cfg.BlockSize
	q := r.URL.Query()

	rangeSpec := r.Header.Get("Range")
	if rangeSpec == "" && q.Has("range") {
		rangeSpec = "bytes=" + q.Get("range")
	}
	want, err := parseRange(rangeSpec, size)
	if err != nil {
		return err
	}
	out := blockSpan(want, size, bs)

	lastID := r.Header.Get("Last-Event-ID") // the header wins over the query
	if lastID == "" {
		lastID = q.Get("lastEventId")
	}
	if lastID != "" {
		held, err := parseLastEventID(lastID, size, bs)
		if err != nil {
			return err
		}
		out.start = max(out.start, held+int64(bs))
		if out.start >= out.end {
			return c.NoContent(http.StatusNoContent) // nothing left: tells EventSource to stop
		}
	}

	if !s.enter() {
		return errTooManyStreams
	}
	defer s.leave()

	strong, s2 := chunker.Negotiate(q.Get("encoding"))
	st := &stream{
		s: s, f: f, span: out, w: c.Response(), rc: http.NewResponseController(c.Response()),
		enc: s.encoder(strong, s2),
	}
	st.policy = newCodecPolicy(st.enc.Codecs())
	st.byEncoding = map[string]int64{}
	defer s.putEncoder(strong, s2, st.enc)
	start := time.Now()
	outcome := st.run(r)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "stream",
		slog.String("path", f.rel), slog.String("etag", f.etag), slog.Int64("start", out.start), slog.Int64("end", out.end),
		slog.Int64("blocks", st.blocks), slog.Int64("bytes", st.bytes), slog.Any("encodings", st.byEncoding),
		slog.Duration("duration", time.Since(start)), slog.String("outcome", outcome), slog.String("remote", r.RemoteAddr))
	return nil
}

// stream is one response of /sse/ after its headers are decided.
type stream struct {
	s      *Server
	f      *file
	span   span
	w      http.ResponseWriter
	rc     *http.ResponseController
	enc    *chunker.Encoder
	policy codecPolicy
	bytes  int64 // bytes written, framing included
	blocks int64 // block events written
	// byEncoding counts the block events written in each encoding.
	byEncoding map[string]int64
}

// run writes the stream and returns its outcome.
func (st *stream) run(r *http.Request) string {
	s, f := st.s, st.f
	size, bs := f.info.Size(), s.cfg.BlockSize
	ctx := r.Context()

	// The per-write deadlines below would outlive the stream on a kept-alive
	// connection (the server has no WriteTimeout to reset them): clear them.
	defer st.rc.SetWriteDeadline(time.Time{})

	h := st.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 && r.ProtoMinor >= 1 { // HTTP/1.0 has no chunks anyway
		// No chunked encoding: the body ends when the connection closes, as
		// the SSE specification suggests, and each block is one write. With
		// chunks, each block took three (the chunk header with the first
		// 4 KiB, the rest, and a 2-byte CRLF as a TCP segment of its own).
		// Go's server then closes the connection after the response; the
		// end event, not the close, tells a client the stream is complete.
		h.Set("Transfer-Encoding", "identity")
	}
	h.Set("ETag", `"`+f.etag+`"`)
	st.w.WriteHeader(http.StatusOK)

	head := []byte("retry: " + strconv.FormatInt(s.cfg.Retry.Milliseconds(), 10) + "\n")
	head = chunker.AppendEvent(head, "", chunker.EventMeta, chunker.Meta{
		Size: size, BlockSize: bs, ETag: f.etag, Start: st.span.start, End: st.span.end,
	})
	if err := st.write(head); err != nil {
		return outcomeWriteFail
	}

	// The whole-file digests for the end event: from the cache, computed
	// here as the blocks go by (a whole-file stream), or computed beside the
	// stream by the cache (a ranged or resumed one). No block waits for them.
	// A whole-file stream hashes on its own goroutine, not the cache's: the
	// cache's computation reads the whole file whether or not anyone stays
	// for it, so a client that leaves after one block would cost a full read
	// and SHA-256 of the file (and the first block of a 4 GiB file took
	// 45 ms instead of 3 while such computations ran).
	key := f.key(bs)
	cached, _ := s.cache.Lookup(key)
	var sum *manifest.Summer
	var hashes []manifest.Hash
	var pending chan manifestResult
	switch {
	case cached != nil:
	case st.span.start == 0 && st.span.end == size:
		sum = manifest.NewSummer()
		hashes = make([]manifest.Hash, 0, chunker.Count(size, bs))
	default:
		pending = make(chan manifestResult, 1)
		go func() { // exits when the manifest is ready or ctx is done
			m, err := s.manifestOf(ctx, f)
			pending <- manifestResult{m, err}
		}()
	}

	chunks, err := chunker.New(f.f, size, bs)
	if err != nil {
		return outcomeReadFail
	}
	for i := st.span.start / int64(bs); i < chunker.Count(st.span.end, bs); i++ {
		select {
		case <-ctx.Done():
			return outcomeGone
		case <-s.done:
			return outcomeShutdown
		default:
		}
		began := time.Now()
		off, raw, err := chunks.Block(i)
		if err != nil {
			return outcomeChanged // the file shrank
		}
		hash := chunker.Hash(raw)
		if cached != nil && uint64(cached.Hashes[i]) != hash || !f.unchanged() {
			return outcomeChanged
		}
		if sum != nil {
			sum.Write(raw)
			hashes = append(hashes, manifest.Hash(hash))
		}
		codec := st.policy.choose()
		frame := st.enc.FrameWith(off, raw, hash, codec)
		var took time.Duration
		if codec != chunker.Identity {
			var n int
			took, n = st.enc.LastCompression()
			st.policy.compressed(codec, len(raw), n, took)
		}
		if err := st.write(frame); err != nil {
			return outcomeWriteFail
		}
		// The whole block's wall time but for compressing: on a fast link
		// our own CPU, on a slow one mostly waiting for the socket.
		st.policy.wrote(len(frame), time.Since(began)-took)
		st.blocks++
		st.byEncoding[st.enc.LastEncoding()]++
	}

	var end chunker.End
	switch {
	case cached != nil:
		end = chunker.End{Size: size, XXH3128: cached.XXH3128, SHA256: cached.SHA256}
	case sum != nil:
		d := sum.Digests()
		end = chunker.End{Size: size, XXH3128: d.XXH3128, SHA256: d.SHA256}
		s.cache.Put(key, &manifest.Manifest{
			Version: manifest.Version, Path: f.rel, Size: size, BlockSize: bs, Blocks: int64(len(hashes)),
			MTime: f.info.ModTime().UTC(), ETag: f.etag, Hashes: hashes, XXH3128: d.XXH3128, SHA256: d.SHA256,
		})
	default:
		m, outcome := st.await(ctx, pending)
		if m == nil {
			return outcome
		}
		end = chunker.End{Size: size, XXH3128: m.XXH3128, SHA256: m.SHA256}
	}
	if err := st.write(chunker.AppendEvent(nil, "", chunker.EventEnd, end)); err != nil {
		return outcomeWriteFail
	}
	return outcomeComplete
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

// unchanged reports whether the open file still has the size, modification
// time and status change time it had when the stream began. The last one
// catches a rewrite in place that put the old mtime back (cp -p, a build
// with its mtime clamped): a write always moves it, and utimes cannot.
func (f *file) unchanged() bool {
	now, err := f.f.Stat()
	return err == nil && now.Size() == f.info.Size() && now.ModTime().Equal(f.info.ModTime()) && ctime(now) == ctime(f.info)
}

// enter registers a stream unless the server is shutting down or has
// MaxStreams open.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.cfg.MaxStreams > 0 && s.active >= s.cfg.MaxStreams {
		return false
	}
	s.active++
	s.streams.Add(1)
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
	s.streams.Done()
}

// encoder takes an Encoder from the server's free list for the encoding,
// or builds one: a zstd encoder is costly to build, so they are kept (up to
// a bound) across streams rather than in a sync.Pool, which every garbage
// collection empties.
// encoder returns an encoder for the codecs a client accepts, from the
// free list of their kind if it has one.
func (s *Server) encoder(strong string, s2 bool) *chunker.Encoder {
	select {
	case e := <-s.encoders[encoderKind{strong, s2}]:
		return e
	default:
		return chunker.NewEncoders(strong, s2)
	}
}

func (s *Server) putEncoder(strong string, s2 bool, e *chunker.Encoder) {
	select {
	case s.encoders[encoderKind{strong, s2}] <- e:
	default: // enough kept
	}
}

// encoderKind names a free list of encoders.
type encoderKind struct {
	strong string
	s2     bool
}

// codecPolicy decides, block by block and by measurement, which codec to
// try, if any: the one with which a raw byte leaves soonest, given the
// link's measured time per byte on the wire and each codec's measured cost
// and ratio. On a fast link the CPU is the bottleneck and blocks go out as
// they are (on loopback, log lines sent all in S2 took 0.42-0.50 s per
// 256 MiB against 0.37 s as they are, and all in zstd 0.94-1.02 s); on a
// slow one (writes block on a full socket) compressible blocks are
// compressed, with zstd's smaller output where the link is slow enough to
// pay for its time, with S2 (four times as fast) where it is not. Each codec
// is tried on every probeEvery-th block, to follow changes in the data, and
// more rarely while it does not pay.
type codecPolicy struct {
	codecs  []string // the codecs the stream may use, cheapest first
	stats   []codecStats
	blocks  int64
	wNs, wB float64 // decayed sums of sending time and bytes on the wire
}

type codecStats struct {
	costNs  float64 // compressing: ns per raw byte
	ratio   float64 // compressed size ÷ raw size
	samples int
	// every is the codec's probe interval in blocks: probeEvery, doubled
	// after each try that did not pay (the block did not shrink, or sending
	// it as it is would have been sooner), up to maxProbeEvery. Probes cost:
	// with a zstd probe every 32nd block random data came out at 0.86x plain
	// HTTP against 1.03x sent as it is, and log lines on loopback at 0.68x
	// against 0.77x. The decision itself follows the link at every block
	// from the live write times; probes only refresh the codec's cost and
	// ratio. The first try of a codec pays for its buffers and is measured
	// again on the next block. next is the block of its next probe.
	every, next int64
}

const (
	probeEvery    = 16
	maxProbeEvery = 256
	ewmaWeight    = 0.25
	// sendDecay weighs the sending time of past blocks. Sums rather than an
	// average of per-block rates: behind a socket buffer most writes return
	// at once and a few wait long, and only time over bytes tells the rate.
	sendDecay = 0.9
)

func newCodecPolicy(codecs []string) codecPolicy {
	return codecPolicy{codecs: codecs, stats: make([]codecStats, len(codecs))}
}

func ewma(old, sample float64) float64 { return old + ewmaWeight*(sample-old) }

// choose returns the codec to try on the next block, or chunker.Identity.
func (p *codecPolicy) choose() string {
	p.blocks++
	if len(p.codecs) == 0 {
		return chunker.Identity
	}
	for i, st := range p.stats {
		if st.samples < 2 {
			return p.codecs[i] // each is measured twice at the start
		}
	}
	for i := range p.stats {
		if st := &p.stats[i]; p.blocks >= st.next {
			st.next = p.blocks + st.every
			return p.codecs[i]
		}
	}
	// The time a raw byte takes to leave, per option: compressing overlaps
	// with sending (the socket buffer takes one block while the next is
	// compressed), so it is the larger of the two. The compressing time
	// counts half as much again: the client pays to decompress (a third to
	// a quarter of it, measured), and where the client waits on its own CPU
	// and shares the machine (ferry bench on loopback) the writes look slow
	// although compressing takes CPU from the client; log lines went out a
	// quarter compressed there without it, at 0.48x plain HTTP against
	// 0.69x sent as they are.
	best, bestNs := chunker.Identity, p.identityNs()
	for i := range p.stats {
		if ns := p.leaveNs(i); ns < bestNs {
			best, bestNs = p.codecs[i], ns
		}
	}
	return best
}

// writeNs is the link's time per byte on the wire, from the blocks sent so
// far (0 before the first).
func (p *codecPolicy) writeNs() float64 {
	if p.wB == 0 {
		return 0
	}
	return p.wNs / p.wB
}

// identityNs is the time a raw byte takes to leave uncompressed: base64
// sends 4 bytes per 3.
func (p *codecPolicy) identityNs() float64 { return 4.0 / 3 * p.writeNs() }

// leaveNs is the time a raw byte takes to leave with codec i.
func (p *codecPolicy) leaveNs(i int) float64 {
	st := p.stats[i]
	return max(1.5*st.costNs, st.ratio*4/3*p.writeNs())
}

// compressed records that codec made n bytes of raw ones in took.
func (p *codecPolicy) compressed(codec string, raw, n int, took time.Duration) {
	i := slices.Index(p.codecs, codec)
	if raw == 0 || i < 0 {
		return
	}
	st := &p.stats[i]
	cost, ratio := float64(took.Nanoseconds())/float64(raw), min(1, float64(n)/float64(raw))
	switch st.samples {
	case 0:
		st.costNs, st.ratio = cost, ratio
		st.every, st.next = probeEvery, p.blocks+probeEvery+int64(i) // spread the codecs' probes
	case 1:
		st.costNs, st.ratio = cost, ewma(st.ratio, ratio) // the first try allocated
	default:
		st.costNs, st.ratio = ewma(st.costNs, cost), ewma(st.ratio, ratio)
	}
	st.samples++
	if ratio >= 0.98 || p.wB > 0 && p.leaveNs(i) >= p.identityNs() {
		st.every = min(2*st.every, maxProbeEvery) // it did not pay
	} else {
		st.every = probeEvery
	}
}

// wrote records that sending n bytes of a block took this long, reading
// and hashing included, compressing excluded.
func (p *codecPolicy) wrote(n int, took time.Duration) {
	if n == 0 {
		return
	}
	p.wNs = p.wNs*sendDecay + float64(max(took, 0).Nanoseconds())
	p.wB = p.wB*sendDecay + float64(n)
}
