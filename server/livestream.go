package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/labstack/echo/v4"
)

// follows reports whether a request asks to follow a live file, on a
// server whose files can be followed (a local folder's).
func (s *Server) follows(r *http.Request) bool {
	if s.live == nil {
		return false
	}
	switch strings.ToLower(r.URL.Query().Get(chunker.QueryFollow)) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// followRequest resolves a ?follow=1 request after prefix to the tracker
// of a live file, or to nil for a file to serve as usual.
func (s *Server) followRequest(r *http.Request, prefix string, wait bool) (*tracker, error) {
	rel, err := requestRel(r, prefix)
	if err != nil {
		return nil, err
	}
	pin := r.URL.Query().Get(chunker.QueryVersion)
	if pin == "" {
		pin = r.Header.Get("If-Match")
	}
	return s.resolveLive(r.Context(), rel, pin, wait)
}

// streamLive serves /sse/ of a live file: its blocks as they become
// complete, from the block after Last-Event-ID, then the end event once
// the file is complete.
func (s *Server) streamLive(c echo.Context, t *tracker) error {
	r := c.Request()
	q := r.URL.Query()
	if r.Header.Get(chunker.HeaderRange) != "" || q.Has(chunker.QueryRange) {
		return fmt.Errorf("%w: %w", errUnsatisfiable, errRangeLive)
	}
	info, err := t.f.Stat()
	if err != nil {
		return errChanging
	}
	size, bs := info.Size(), s.cfg.BlockSize
	out := span{0, size}
	lastID := r.Header.Get(chunker.HeaderLastEventID)
	if lastID == "" {
		lastID = q.Get(chunker.QueryLastEventID)
	}
	if lastID != "" {
		held, err := parseLastEventID(lastID, size, bs)
		if err != nil {
			return err
		}
		out.start = held + int64(bs)
		s.metrics.resumes.Inc()
	}
	out.end = max(out.start, size)
	f := &file{rel: t.rel, info: ObjectInfo{Path: t.rel, Size: size}, etag: t.etag}
	if r.Method == http.MethodHead {
		setStreamHeaders(c.Response().Header(), f.etag)
		return c.NoContent(http.StatusOK)
	}
	return s.serveStream(c, f, out, func(st *stream, r *http.Request) string {
		st.live = true
		return st.follow(r, t)
	})
}

// follow writes a live file's stream: each block once the tracker has
// hashed it, pings while the file does not grow, and the end event once
// the file is complete.
func (st *stream) follow(r *http.Request, t *tracker) string {
	defer st.rc.SetWriteDeadline(time.Time{})
	if err := st.head(r); err != nil {
		return outcomeWriteFail
	}
	ctx := r.Context()
	bs := int64(st.s.cfg.BlockSize)
	buf := make([]byte, bs)
	hb := st.s.cfg.Heartbeat
	silence := time.NewTimer(hb) // since the last write
	defer silence.Stop()
	for i := st.span.start / bs; ; {
		snap, wake := t.snapshot()
		for ; i < snap.blocks; i++ {
			if outcome := st.stopped(ctx); outcome != "" {
				return outcome
			}
			began := time.Now()
			n := bs
			if i == snap.blocks-1 && snap.final != nil {
				n = snap.final.Size - i*bs
			}
			raw := buf[:n]
			if _, err := t.f.ReadAt(raw, i*bs); err != nil {
				return outcomeChanged
			}
			hash := chunker.Hash(raw)
			if manifest.Hash(hash) != snap.hashes[i] {
				return outcomeChanged // rewritten since the tracker hashed it
			}
			if err := st.block(i*bs, raw, hash, began); err != nil {
				return outcomeWriteFail
			}
			silence.Reset(hb)
		}
		switch snap.status {
		case trackComplete:
			m := snap.final
			if err := st.write(chunker.AppendEvent(nil, "", chunker.EventEnd, chunker.End{Size: m.Size, XXH3128: m.XXH3128, SHA256: m.SHA256})); err != nil {
				return outcomeWriteFail
			}
			return outcomeComplete
		case trackChanged:
			return outcomeChanged
		}
		select {
		case <-wake:
		case <-silence.C:
			if err := st.write([]byte(": ping\n\n")); err != nil {
				return outcomeWriteFail
			}
			silence.Reset(hb)
		case <-ctx.Done():
			return outcomeGone
		case <-st.s.done:
			return outcomeShutdown
		}
	}
}

// stopped returns the outcome of a stream whose client left or whose
// server is shutting down, or "".
func (st *stream) stopped(ctx context.Context) string {
	select {
	case <-ctx.Done():
		return outcomeGone
	case <-st.s.done:
		return outcomeShutdown
	default:
		return ""
	}
}

// liveManifest answers /manifest/ of a live file: the blocks hashed so far
// once the tracker has caught up with what was on disk when the request
// came, or the final manifest once the file is complete.
func (s *Server) liveManifest(c echo.Context, t *tracker) error {
	info, err := t.f.Stat()
	if err != nil {
		return errChanging
	}
	want := info.Size() / int64(s.cfg.BlockSize)
	ctx, cancel := context.WithTimeoutCause(c.Request().Context(), s.cfg.ManifestWait, errNotReady)
	defer cancel()
	for {
		snap, wake := t.snapshot()
		switch {
		case snap.status == trackChanged:
			return errChanging
		case snap.final != nil:
			return s.answerManifest(c, snap.final)
		case snap.blocks >= want:
			bs := s.cfg.BlockSize
			return s.answerManifest(c, &manifest.Manifest{
				Version: manifest.Version, Path: t.rel, Size: snap.blocks * int64(bs), BlockSize: bs, Blocks: snap.blocks,
				MTime: info.ModTime().UTC(), ETag: t.etag, Live: true, Hashes: snap.hashes[:snap.blocks:snap.blocks], Weak: snap.weak[:snap.blocks:snap.blocks],
			})
		}
		select {
		case <-wake:
		case <-ctx.Done():
			if context.Cause(ctx) != errNotReady {
				return context.Cause(ctx)
			}
			return answerNotReady(c, t.rel, snap.blocks*int64(s.cfg.BlockSize), info.Size())
		}
	}
}
