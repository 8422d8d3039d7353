package server

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ferry-dev/ferry/chunker"
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
	if s.follows(r) {
		t, err := s.followRequest(r, chunker.PathSSE, true)
		if err != nil {
			return err
		}
		if t != nil {
			defer s.live.release(t)
			return s.streamLive(c, t)
		}
	}
	f, err := s.open(r, chunker.PathSSE)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkPin(r, f.etag); err != nil {
		return err
	}
	out, resumed, err := requestedSpan(r, f.info.Size, s.cfg.BlockSize)
	if err != nil {
		return err
	}
	if resumed && out.start >= out.end {
		return c.NoContent(http.StatusNoContent) // nothing left: tells EventSource to stop
	}
	if r.Method == http.MethodHead {
		// What a GET would answer, without the stream: a proxy's or a
		// download manager's probe.
		setStreamHeaders(c.Response().Header(), f.etag)
		return c.NoContent(http.StatusOK)
	}
	if resumed {
		s.metrics.resumes.Inc()
	}

	return s.serveStream(c, f, out, (*stream).run)
}

// serveStream registers a stream of f's span, writes it with run, and logs
// how it went.
func (s *Server) serveStream(c echo.Context, f *file, out span, run func(*stream, *http.Request) string) error {
	r := c.Request()
	if !s.enter() {
		return errTooManyStreams
	}
	defer s.leave()

	strong, s2 := chunker.Negotiate(r.URL.Query().Get(chunker.QueryEncoding))
	st := &stream{
		s: s, f: f, span: out, w: c.Response(), rc: http.NewResponseController(c.Response()),
		enc: s.encoder(strong, s2),
	}
	st.policy = newCodecPolicy(st.enc.Codecs())
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		st.rate = linkRate(c)
	}
	st.byEncoding = map[string]int64{}
	defer s.putEncoder(strong, s2, st.enc)
	start := time.Now()
	outcome := run(st, r)
	if outcome == outcomeWriteFail && s.draining() {
		// The drain closed the connection of a client that stopped reading.
		outcome = outcomeShutdown
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "stream",
		slog.String("path", f.rel), slog.String("etag", f.etag), slog.Int64("start", out.start), slog.Int64("end", out.end),
		slog.Int64("blocks", st.blocks), slog.Int64("bytes", st.bytes), slog.Any("encodings", st.byEncoding),
		slog.Int64("zstd_slower", st.better),
		slog.Duration("duration", time.Since(start)), slog.String("outcome", outcome), slog.String("remote", c.RealIP()))
	return nil
}

// requestedSpan returns the blocks a request of /sse/ asks for: those
// overlapping its Range (header, or query parameter where EventSource cannot
// set one), from the block after its Last-Event-ID on, if it has one
// (resumed). A resumed request's empty span means the client holds
// everything it asked for.
func requestedSpan(r *http.Request, size int64, bs int) (out span, resumed bool, err error) {
	q := r.URL.Query()
	rangeSpec := r.Header.Get(chunker.HeaderRange)
	if rangeSpec == "" && q.Has(chunker.QueryRange) {
		rangeSpec = "bytes=" + q.Get(chunker.QueryRange)
	}
	want, err := parseRange(rangeSpec, size)
	if err != nil {
		return span{}, false, err
	}
	out = blockSpan(want, size, bs)

	lastID := r.Header.Get(chunker.HeaderLastEventID) // the header wins over the query
	if lastID == "" {
		lastID = q.Get(chunker.QueryLastEventID)
	}
	if lastID != "" {
		held, err := parseLastEventID(lastID, size, bs)
		if err != nil {
			return span{}, false, err
		}
		out.start = max(out.start, held+int64(bs))
	}
	return out, lastID != "", nil
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
	s.metrics.streams.Inc()
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
	s.metrics.streams.Dec()
	s.streams.Done()
}
