package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/ferry-dev/ferry/server/web"
	"github.com/labstack/echo/v4"
	"github.com/zeebo/xxh3"
)

// file is one opened version of a served file.
type file struct {
	rel  string
	obj  Object
	info ObjectInfo
	etag string
}

func (f *file) key(blockSize int) manifest.Key { return f.info.key(blockSize) }

func (i ObjectInfo) key(blockSize int) manifest.Key {
	return manifest.Key{Path: i.Path, Size: i.Size, MTimeNano: i.ModTime.UnixNano(), Inode: i.inode, CTimeNano: i.ctime, BlockSize: blockSize, Version: i.Version}
}

// etag is the version's etag at a block size. A local file's comes from
// its size and mtime; a remote one's from the origin's validator instead,
// so that every replica over the same origin computes the same etag.
func (i ObjectInfo) etag(blockSize int) string {
	if i.Version == "" {
		return manifest.ETag(i.Size, i.ModTime, blockSize)
	}
	return fmt.Sprintf("%x-o%016x-%x", i.Size, xxh3.HashString(i.Version), blockSize)
}

func (f *file) Close() error { return f.obj.Close() }

// requestRel returns the file path of a request, after prefix, relative
// to the served root.
func requestRel(r *http.Request, prefix string) (string, error) {
	escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		return "", errNotFound
	}
	return cleanPath(escaped)
}

// open resolves the request path after prefix and opens that file.
func (s *Server) open(r *http.Request, prefix string) (*file, error) {
	rel, err := requestRel(r, prefix)
	if err != nil {
		return nil, err
	}
	obj, err := s.openObject(r.Context(), rel)
	if err != nil {
		return nil, err
	}
	info := obj.Info()
	return &file{rel: rel, obj: obj, info: info, etag: info.etag(s.cfg.BlockSize)}, nil
}

// openObject opens rel at the origin, through the block cache if the file
// is remote and the server has one.
func (s *Server) openObject(ctx context.Context, rel string) (Object, error) {
	obj, err := s.origin.Open(ctx, rel)
	if err != nil || s.cfg.BlockCache == nil || obj.Info().Version == "" {
		return obj, err
	}
	return cachedObject{Object: obj, cache: s.cfg.BlockCache, blockSize: s.cfg.BlockSize}, nil
}

// checkPin enforces a version pin (query v= or If-Match) against etag.
func checkPin(r *http.Request, etag string) error {
	if v := r.URL.Query().Get(chunker.QueryVersion); v != "" && !matchesETag(v, etag) {
		return &pinError{etag: etag}
	}
	if h := r.Header.Get("If-Match"); h != "" && !matchesETag(h, etag) {
		return &pinError{etag: etag}
	}
	return nil
}

// pinError is a version pin that failed: the 412 tells the client the
// version the server has, in its ETag header, so that a client behind a
// balancer can tell replicas that disagree from a file that changed.
type pinError struct{ etag string }

func (e *pinError) Error() string        { return errChangedVersion.Error() }
func (e *pinError) Is(target error) bool { return target == errChangedVersion }

// handleFile serves raw bytes with Range, If-Range and ETag, so that curl -C -,
// wget -c and aria2c resume against the same server.
func (s *Server) handleFile(c echo.Context) error {
	f, err := s.open(c.Request(), chunker.PathFiles)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkPin(c.Request(), f.etag); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("ETag", `"`+f.etag+`"`)
	h.Set("Accept-Ranges", "bytes")
	var content io.ReadSeeker = io.NewSectionReader(f.obj, 0, f.info.Size)
	if osf := localFile(f.obj); osf != nil {
		// An *os.File is sent with sendfile(2): the kernel copies, not us.
		content = osf
	}
	http.ServeContent(c.Response(), c.Request(), path.Base(f.rel), f.info.ModTime, content)
	return nil
}

// manifestOf returns the manifest of an opened file version, computing it
// once per version. A file that changes while it is hashed yields
// errChangedVersion and nothing is cached.
func (s *Server) manifestOf(ctx context.Context, f *file) (*manifest.Manifest, error) {
	key := f.key(s.cfg.BlockSize)
	if m, ok := s.cache.Lookup(key); ok {
		s.metrics.manifestHits.Inc()
		return m, nil
	}
	s.metrics.manifestMisses.Inc()
	return s.cache.Get(ctx, key, func(ctx context.Context) (*manifest.Manifest, error) {
		// The computation outlives the request that started it, so it reads
		// through a handle of its own, checked to be the same version.
		g, err := s.openObject(ctx, f.rel)
		if err != nil {
			return nil, errChangedVersion
		}
		defer g.Close()
		info := g.Info()
		if info.key(s.cfg.BlockSize) != key {
			return nil, errChangedVersion
		}
		if m := s.sharedManifest(ctx, f); m != nil {
			s.log.Info("manifest", "path", f.rel, "etag", f.etag, "source", "shared")
			return m, nil
		}
		start := time.Now()
		defer func() {
			s.log.Info("manifest", "path", f.rel, "etag", f.etag, "source", "hashed", "duration", time.Since(start))
		}()
		hashed := new(atomic.Int64)
		s.hashing.Store(key, hashed)
		defer s.hashing.Delete(key)
		m, err := manifest.BuildCounting(ctx, g, f.rel, info.Size, info.ModTime, s.cfg.BlockSize, hashed)
		if err != nil && !g.Unchanged() {
			return nil, errChangedVersion // truncated while it was read
		}
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", f.rel, err)
		}
		if !g.Unchanged() {
			return nil, errChangedVersion
		}
		m.ETag = f.etag // a remote file's etag is not derived from its mtime
		return m, nil
	})
}

// sharedManifest returns the manifest kept beside f by ferry manifest, if
// there is one of f's version at the server's block size.
func (s *Server) sharedManifest(ctx context.Context, f *file) *manifest.Manifest {
	obj, err := s.origin.Open(ctx, f.rel+manifest.SharedSuffix)
	if err != nil {
		return nil
	}
	defer obj.Close()
	m, err := manifest.Decode(io.NewSectionReader(obj, 0, obj.Info().Size))
	if err != nil || m.Size != f.info.Size || m.BlockSize != s.cfg.BlockSize || m.ETag != f.etag || !m.MTime.Equal(f.info.ModTime) {
		return nil
	}
	m.Path = f.rel
	return m
}

func (s *Server) handleManifest(c echo.Context) error {
	if s.follows(c.Request()) {
		t, err := s.followRequest(c.Request(), chunker.PathManifest, false)
		if err != nil {
			return err
		}
		if t != nil {
			defer s.live.release(t)
			return s.liveManifest(c, t)
		}
	}
	f, err := s.open(c.Request(), chunker.PathManifest)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkPin(c.Request(), f.etag); err != nil {
		return err
	}
	// A manifest still being hashed does not hold the request silent past
	// a proxy's idle timeout: after ManifestWait the client is told how far
	// the hashing is and when to ask again.
	ctx, cancel := context.WithTimeoutCause(c.Request().Context(), s.cfg.ManifestWait, errNotReady)
	defer cancel()
	m, err := s.manifestOf(ctx, f)
	if errors.Is(err, errChangedVersion) {
		return errChanging // it changed while it was hashed: the next version may settle
	}
	if err != nil && context.Cause(ctx) == errNotReady && c.Request().Context().Err() == nil {
		return s.notReady(c, f)
	}
	if err != nil {
		return err
	}
	return s.answerManifest(c, m)
}

func (s *Server) answerManifest(c echo.Context, m *manifest.Manifest) error {
	c.Response().Header().Set("ETag", `"`+m.ETag+`"`)
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, m)
}

// errNotReady is the cause of a manifest wait that ran out.
var errNotReady = errors.New("manifest not ready")

// notReady answers 503 for a manifest still being hashed, with how far it
// is: a client that sees the count grow keeps waiting.
func (s *Server) notReady(c echo.Context, f *file) error {
	var hashed int64
	if v, ok := s.hashing.Load(f.key(s.cfg.BlockSize)); ok {
		hashed = v.(*atomic.Int64).Load()
	}
	return answerNotReady(c, f.rel, hashed, f.info.Size)
}

// answerNotReady is the 503 of a manifest of rel still being hashed:
// hashed of size bytes so far.
func answerNotReady(c echo.Context, rel string, hashed, size int64) error {
	c.Response().Header().Set("Retry-After", "1")
	return c.JSON(http.StatusServiceUnavailable, map[string]any{
		"error":  fmt.Sprintf("the manifest of %s is not ready: %d of %d bytes hashed", rel, hashed, size),
		"status": http.StatusServiceUnavailable, "hashed": hashed, "size": size,
	})
}

// Entry is one file in the /api/files listing.
type Entry struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	ETag  string `json:"etag"`
	MTime string `json:"mtime"`
}

// handleList lists every regular file under the root that /sse/ would serve.
func (s *Server) handleList(c echo.Context) error {
	var entries []Entry
	err := s.origin.Walk(c.Request().Context(), func(info ObjectInfo) error {
		if strings.HasSuffix(info.Path, manifest.SharedSuffix) {
			return nil // a shared manifest, not a file to download
		}
		entries = append(entries, Entry{Path: info.Path, Size: info.Size, ETag: info.etag(s.cfg.BlockSize),
			MTime: info.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	if entries == nil {
		entries = []Entry{}
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, entries)
}

// handleAsset serves the embedded page at / and its files by name.
func (s *Server) handleAsset(c echo.Context) error {
	name := c.Param("asset")
	if name == "" {
		name = "index.html"
	}
	if validRel(name) != nil || strings.Contains(name, "/") {
		return errNotFound
	}
	b, err := fs.ReadFile(web.FS(), name)
	if err != nil {
		return errNotFound
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(b))
	return nil
}
