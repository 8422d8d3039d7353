// Package server is Ferry's HTTP server: it streams files under a root as
// Server-Sent Events of verified blocks (/sse/), serves their raw bytes
// (/files/), their manifests (/manifest/) and a listing (/api/files).
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/labstack/echo/v4"
)

// Config configures a Server. The zero value of every field but Root is a
// usable default.
type Config struct {
	// Root is the directory whose files are served, unless Origin is set.
	Root string
	// Origin, if set, is where the files come from instead of Root: an
	// HTTPOrigin or S3Origin. The Server closes it.
	Origin Origin
	// BlockSize is the block size in bytes, from chunker.MinBlockSize to
	// chunker.MaxBlockSize. Default chunker.DefaultBlockSize (256 KiB).
	BlockSize int
	// Retry is the reconnection delay sent to clients in the retry field.
	// Default 1.5 s.
	Retry time.Duration
	// Heartbeat is how long a stream may stay silent before it sends a
	// comment, so that clients and proxies see it alive. Default 15 s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client; a client that accepts no
	// bytes for this long is dropped. Default 30 s.
	WriteTimeout time.Duration
	// CacheDir keeps computed manifests across restarts. Empty: memory only.
	CacheDir string
	// ManifestWait is how long a /manifest/ request waits for a manifest
	// still being hashed before it is answered 503 with the progress and
	// Retry-After; keep it below the idle timeouts of proxies in front.
	// Default 5 s.
	ManifestWait time.Duration
	// Logger receives access logs. Default: discard.
	Logger *slog.Logger
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (slowloris). Default 10 s.
	ReadHeaderTimeout time.Duration
	// MaxStreams limits concurrent /sse/ streams; one more is answered 503
	// with Retry-After. 0 means no limit.
	MaxStreams int
	// Tokens, if any, are the bearer tokens that may read the files
	// (/sse/, /files/, /manifest/, /api/files).
	Tokens []string
	// SignKey, if set, is the HMAC key of signed URLs (see Sign). Setting it
	// also makes the file endpoints require a token or a signature.
	SignKey []byte
	// CORSOrigins are the origins whose pages may read the file endpoints;
	// "*" means any origin and cannot be combined with CORSCredentials.
	CORSOrigins []string
	// CORSCredentials lets allowed origins send cookies and Authorization.
	CORSCredentials bool
}

func (c *Config) setDefaults() error {
	if c.Root == "" && c.Origin == nil {
		return errors.New("server: no root directory")
	}
	if c.BlockSize == 0 {
		c.BlockSize = chunker.DefaultBlockSize
	}
	if err := chunker.CheckBlockSize(c.BlockSize); err != nil {
		return err
	}
	if c.Retry <= 0 {
		c.Retry = 1500 * time.Millisecond
	}
	if c.ManifestWait <= 0 {
		c.ManifestWait = 5 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CORSCredentials && slices.Contains(c.CORSOrigins, "*") {
		return errors.New("server: CORS origin \"*\" cannot be combined with credentials; list the origins")
	}
	if c.MaxStreams < 0 {
		return errors.New("server: negative MaxStreams")
	}
	for _, t := range c.Tokens {
		if len(t) < 8 {
			return errors.New("server: tokens must be at least 8 characters")
		}
	}
	return nil
}

// Server serves one root directory. It is an http.Handler.
type Server struct {
	cfg    Config
	origin Origin
	cache  *manifest.Cache
	// hashing maps the manifest.Key of each manifest being built to its
	// bytes hashed so far (*atomic.Int64).
	hashing sync.Map
	echo    *echo.Echo
	log     *slog.Logger

	// done is closed by Shutdown: open streams end after their current
	// block. closing, under mu, keeps new streams from starting after that.
	done    chan struct{}
	mu      sync.Mutex
	closing bool
	active  int // open streams, under mu

	encoders map[encoderKind]chan *chunker.Encoder // free lists, by the codecs they have
	streams  sync.WaitGroup
}

// New opens cfg.Root and returns a Server for it. Call Close when done.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	origin := cfg.Origin
	if origin == nil {
		dir, err := NewDirOrigin(cfg.Root)
		if err != nil {
			return nil, err
		}
		origin = dir
	}
	cache, err := manifest.NewCache(cfg.CacheDir, 0)
	if err != nil {
		origin.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, origin: origin, cache: cache, log: cfg.Logger, done: make(chan struct{}), encoders: map[encoderKind]chan *chunker.Encoder{}}
	for _, strong := range []string{chunker.Identity, chunker.Zstd, chunker.Gzip} {
		for _, s2 := range []bool{false, true} {
			s.encoders[encoderKind{strong, s2}] = make(chan *chunker.Encoder, 32)
		}
	}
	s.echo = s.routes()
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.recoverPanics, s.accessLog)
	if len(s.cfg.CORSOrigins) > 0 {
		e.Use(s.cors())
	}
	e.GET(chunker.PathSSE+"*", s.handleStream, s.authorize(chunker.PathSSE))
	e.GET(chunker.PathFiles+"*", s.handleFile, s.authorize(chunker.PathFiles))
	e.HEAD(chunker.PathFiles+"*", s.handleFile, s.authorize(chunker.PathFiles))
	e.GET(chunker.PathManifest+"*", s.handleManifest, s.authorize(chunker.PathManifest))
	e.GET(chunker.PathList, s.handleList, s.authorize(""))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/", s.handleAsset)
	e.GET("/:asset", s.handleAsset)
	return e
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Shutdown asks every open stream to end after its current block, without
// an end event (so clients reconnect and resume elsewhere or later), and
// waits for them until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() { s.streams.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close releases the root directory.
func (s *Server) Close() error { return s.origin.Close() }

// HTTPServer returns an http.Server for s with the timeouts a public
// streaming server needs: headers must arrive promptly (slowloris), idle
// keep-alive connections are closed, and there is no server-wide
// WriteTimeout, which would cut long streams; streams set a deadline per write.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
