// Package server is Ferry's HTTP server: it streams files under a root as
// Server-Sent Events of verified blocks (/sse/), serves their raw bytes
// (/files/), their manifests (/manifest/) and a listing (/api/files).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
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
	// TrustedProxies are the networks (CIDR, or single addresses) of the
	// proxies in front whose X-Forwarded-For names the client, in the
	// access log. None: the log shows the connection's address.
	TrustedProxies []string
	// BlockCache, if set, keeps the blocks of remote files on local disk.
	BlockCache *BlockCache
	// MetricsElsewhere keeps /metrics off the Server's routes, for a
	// MetricsHandler served on an address of its own.
	MetricsElsewhere bool
	// FollowIdle is how long a followed live file may go without growing
	// before it counts as complete, when no writer's close or rename said
	// so first. Default 60 s.
	FollowIdle time.Duration
	// FollowWait is how long a ?follow=1 request for a file that does not
	// exist yet waits for it to appear before 404. Default 10 min.
	FollowWait time.Duration
	// FollowTemp are the temporary names a writer may write a file under
	// before renaming it into place ("{}" is the name): a follower of a name
	// that does not exist yet follows its temporary file. Default
	// "{}.part" and "{}.tmp".
	FollowTemp []string
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
		c.Heartbeat = 5 * time.Second // below the idle timeouts of common proxies (nginx's and HAProxy's are often 10 s or more)
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.FollowIdle <= 0 {
		c.FollowIdle = 60 * time.Second
	}
	if c.FollowWait <= 0 {
		c.FollowWait = 10 * time.Minute
	}
	if c.FollowTemp == nil {
		c.FollowTemp = []string{"{}.part", "{}.tmp"}
	}
	for _, p := range c.FollowTemp {
		if !strings.Contains(p, "{}") || p == "{}" {
			return fmt.Errorf("server: follow temporary name %q: want a pattern such as {}.part, {} standing for the name", p)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CORSCredentials && slices.Contains(c.CORSOrigins, "*") {
		return errors.New("server: CORS origin \"*\" cannot be combined with credentials; list the origins")
	}
	for _, p := range c.TrustedProxies {
		if _, err := parseNet(p); err != nil {
			return fmt.Errorf("server: trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", p)
		}
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
	dir    *DirOrigin // the local folder served, nil for a remote origin
	live   *liveFiles // the live files followed, nil for a remote origin
	cache  *manifest.Cache
	// hashing maps the manifest.Key of each manifest being built to its
	// bytes hashed so far (*atomic.Int64).
	hashing sync.Map
	echo    *echo.Echo
	log     *slog.Logger
	metrics *metrics

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
	var dir *DirOrigin
	if origin == nil {
		var err error
		if dir, err = NewDirOrigin(cfg.Root); err != nil {
			return nil, err
		}
		origin = dir
	}
	cache, err := manifest.NewCache(cfg.CacheDir, 0)
	if err != nil {
		origin.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, origin: origin, metrics: newMetrics(cfg.BlockCache), cache: cache, log: cfg.Logger, done: make(chan struct{}), encoders: map[encoderKind]chan *chunker.Encoder{}}
	for _, strong := range []string{chunker.Identity, chunker.Zstd, chunker.Gzip} {
		for _, s2 := range []bool{false, true} {
			s.encoders[encoderKind{strong, s2}] = make(chan *chunker.Encoder, 32)
		}
	}
	if dir != nil {
		s.dir, s.live = dir, newLiveFiles()
	}
	s.origin = observed{origin, s.metrics}
	s.echo = s.routes()
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if len(s.cfg.TrustedProxies) > 0 {
		// Only the proxies named: echo trusts every private network by default.
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, p := range s.cfg.TrustedProxies {
			n, _ := parseNet(p) // checked by setDefaults
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Use(s.recoverPanics, s.accessLog)
	if len(s.cfg.CORSOrigins) > 0 {
		e.Use(s.cors())
	}
	e.GET(chunker.PathSSE+"*", s.handleStream, s.authorize(chunker.PathSSE))
	e.HEAD(chunker.PathSSE+"*", s.handleStream, s.authorize(chunker.PathSSE))
	e.GET(chunker.PathFiles+"*", s.handleFile, s.authorize(chunker.PathFiles))
	e.HEAD(chunker.PathFiles+"*", s.handleFile, s.authorize(chunker.PathFiles))
	e.GET(chunker.PathManifest+"*", s.handleManifest, s.authorize(chunker.PathManifest))
	e.GET(chunker.PathList, s.handleList, s.authorize(""))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.handleReady)
	if !s.cfg.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(s.MetricsHandler()))
	}
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

// draining reports whether Shutdown has begun.
func (s *Server) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Close releases the root directory.
func (s *Server) Close() error {
	if s.live != nil {
		s.live.close()
	}
	return s.origin.Close()
}

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
		// The connection, for the codec policy's reading of the kernel's
		// delivery rate.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
}

// connKey is the context key of a request's net.Conn.
type connKey struct{}

// parseNet parses a CIDR, or a single address as the network of itself.
func parseNet(s string) (*net.IPNet, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("not a CIDR or an address: %q", s)
	}
	bits := 128
	if ip4 := ip.To4(); ip4 != nil {
		ip, bits = ip4, 32
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
}

// handleReady answers /readyz: 200 while the origin can be read and the
// server is not draining, else 503, so that a balancer sends new
// downloads elsewhere.
func (s *Server) handleReady(c echo.Context) error {
	if s.draining() {
		c.Response().Header().Set("Retry-After", "2")
		return c.String(http.StatusServiceUnavailable, "draining\n")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	if err := s.origin.Ready(ctx); err != nil {
		s.log.Warn("not ready", "origin", s.origin.String(), "err", err)
		c.Response().Header().Set("Retry-After", "2")
		return c.String(http.StatusServiceUnavailable, "origin unavailable\n")
	}
	return c.String(http.StatusOK, "ready\n")
}
