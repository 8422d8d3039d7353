package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/server"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	if code := parseFlags(f.fs, args, stderr); code >= 0 {
		return code
	}
	cfg, code := f.config(stderr)
	if code >= 0 {
		return code
	}
	if *f.origin != "" {
		o, err := openOrigin(ctx, *f.origin, *f.s3Endpoint)
		if err != nil {
			fmt.Fprintf(stderr, "ferry serve: %v\n", err)
			return exitUsage
		}
		cfg.Origin = o
		if cfg.CacheDir != "" && f.cacheMax > 0 {
			if cfg.BlockCache, err = server.NewBlockCache(filepath.Join(cfg.CacheDir, "blocks"), int64(f.cacheMax)); err != nil {
				fmt.Fprintf(stderr, "ferry serve: block cache: %v\n", err)
				return exitFailure
			}
			defer cfg.BlockCache.Close()
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return exitFailure
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *f.addr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return exitFailure
	}
	hs := srv.HTTPServer(ln.Addr().String())
	if *f.metricsAddr != "" {
		mln, err := net.Listen("tcp", *f.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "ferry serve: --metrics-addr: %v\n", err)
			return exitFailure
		}
		ms := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln) // exits at ms.Close
		defer ms.Close()
		fmt.Fprintf(stdout, "ferry: metrics at http://%s/metrics\n", mln.Addr())
	}
	base := "http://" + ln.Addr().String()
	if *f.tlsCert != "" {
		base = "https://" + ln.Addr().String()
	}
	if cfg.Origin != nil {
		printWelcome(stdout, base, cfg.Origin.String(), "", cfg.BlockSize)
	} else {
		printWelcome(stdout, base, cfg.Root, cfg.Root, cfg.BlockSize)
	}

	served := make(chan error, 1)
	go func() { // exits when hs is shut down
		if *f.tlsCert != "" {
			served <- hs.ServeTLS(ln, *f.tlsCert, *f.tlsKey) // HTTP/2 is negotiated by ALPN
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return exitFailure
	case <-ctx.Done():
	}
	cfg.Logger.Info("shutting down", "cause", context.Cause(ctx).Error())
	drain(srv, hs, *f.grace)
	return exitOK
}

// serveFlags are the flags of ferry serve.
type serveFlags struct {
	fs                              *flag.FlagSet
	root, addr, cacheDir, logFormat *string
	origin, s3Endpoint, metricsAddr *string
	tokenFile, signKeyFile          *string
	tlsCert, tlsKey                 *string
	blockSize, cacheMax             byteSize
	retry, heartbeat, writeTimeout  *time.Duration
	headerTimeout, grace            *time.Duration
	followIdle, followWait          *time.Duration
	followTemp                      listFlag
	noCache, corsCreds              *bool
	maxStreams                      *int
	tokens, corsOrigins, proxies    listFlag
}

func newServeFlags(stderr io.Writer) *serveFlags {
	fs := flag.NewFlagSet("ferry serve", flag.ContinueOnError)
	f := &serveFlags{fs: fs, blockSize: byteSize(chunker.DefaultBlockSize), cacheMax: 10 << 30}
	f.root = fs.String("root", "", "folder to serve (default: ./testdata, the sample files)")
	f.origin = fs.String("origin", "", "serve the files of another server instead of --root: https://host/prefix/ (any server that honours Range) or s3://BUCKET/PREFIX")
	f.s3Endpoint = fs.String("s3-endpoint", "", "endpoint of an S3-compatible store other than AWS, e.g. http://127.0.0.1:8333 (path-style); credentials from the AWS variables and files")
	f.addr = fs.String("addr", "127.0.0.1:8080", "address to listen on")
	fs.Var(&f.blockSize, "block-size", "block size, 1KiB to 16MiB")
	f.retry = fs.Duration("retry", 1500*time.Millisecond, "reconnection delay sent to clients")
	f.heartbeat = fs.Duration("heartbeat", 5*time.Second, "idle time after which a stream sends a ping comment; keep it below the idle timeout of any proxy in front")
	f.writeTimeout = fs.Duration("write-timeout", 30*time.Second, "drop a client that accepts no bytes for this long")
	f.headerTimeout = fs.Duration("read-header-timeout", 10*time.Second, "drop a client that has not sent its request headers by then")
	f.cacheDir = fs.String("cache-dir", defaultCacheDir(), "folder keeping block hashes across restarts")
	fs.Var(&f.cacheMax, "cache-max", "bytes of blocks of a remote --origin kept in --cache-dir/blocks, least recently used evicted (0: none)")
	f.noCache = fs.Bool("no-cache", false, "keep block hashes in memory only")
	f.logFormat = fs.String("log", "text", "access log format on stderr: text, json or none")
	f.grace = fs.Duration("shutdown-timeout", 5*time.Second, "how long SIGINT/SIGTERM waits for open streams to end")
	f.maxStreams = fs.Int("max-streams", 0, "concurrent streams at most; more get 503 with Retry-After (0: no limit)")
	fs.Var(&f.tokens, "token", "bearer token required for the file endpoints (repeatable; prefer --token-file)")
	f.tokenFile = fs.String("token-file", "", "file of bearer tokens, one per line")
	f.signKeyFile = fs.String("sign-key-file", "", "HMAC key for signed URLs (ferry sign); also requires a token or signature")
	fs.Var(&f.corsOrigins, "cors-origin", "origin allowed to read the files from a page (repeatable, or comma-separated; * for any)")
	f.corsCreds = fs.Bool("cors-credentials", false, "allow credentials (cookies, Authorization) from the allowed origins")
	fs.Var(&f.proxies, "trusted-proxy", "CIDR or address of a proxy in front whose X-Forwarded-For names the client in the log (repeatable)")
	f.metricsAddr = fs.String("metrics-addr", "", "serve /metrics on this address of its own instead of beside the files")
	f.followIdle = fs.Duration("follow-idle", time.Minute, "a followed file (?follow=1) that has not grown for this long is complete, if no close or rename said so first")
	f.followWait = fs.Duration("follow-wait", 10*time.Minute, "how long a follower of a file that does not exist yet waits for it before 404")
	fs.Var(&f.followTemp, "follow-temp", "temporary name a writer renames into place, {} standing for the name (repeatable; default {}.part and {}.tmp)")
	f.tlsCert = fs.String("tls-cert", "", "TLS certificate file (PEM); serves HTTPS and HTTP/2")
	f.tlsKey = fs.String("tls-key", "", "TLS private key file (PEM)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry serve [--root DIR] [--addr HOST:PORT] [--block-size 256KiB] [flags]")
		fs.PrintDefaults()
	}
	return f
}

// config checks the parsed flags and returns the server's configuration,
// or an exit code ≥ 0 after telling the user what is wrong.
func (f *serveFlags) config(stderr io.Writer) (server.Config, int) {
	fail := func(format string, args ...any) (server.Config, int) {
		fmt.Fprintf(stderr, "ferry serve: "+format+"\n", args...)
		return server.Config{}, exitUsage
	}
	if f.fs.NArg() > 0 {
		return fail("unexpected argument %q (the folder goes in --root)", f.fs.Arg(0))
	}
	if err := chunker.CheckBlockSize(int(f.blockSize)); err != nil {
		return fail("--block-size %s: must be between 1KiB and 16MiB", f.blockSize.String())
	}
	root := *f.root
	if *f.origin != "" && root != "" {
		return fail("--origin and --root are two sources: give one")
	}
	if *f.s3Endpoint != "" && !strings.HasPrefix(*f.origin, "s3://") {
		return fail("--s3-endpoint needs --origin s3://BUCKET/PREFIX")
	}
	if root == "" && *f.origin == "" {
		root = "testdata"
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return fail("no --root given and no ./testdata folder here; pass --root DIR")
		}
	}
	logger, err := newLogger(*f.logFormat, stderr)
	if err != nil {
		return fail("--log %q: want text, json or none", *f.logFormat)
	}
	cacheDir := *f.cacheDir
	if *f.noCache {
		cacheDir = ""
	}
	if (*f.tlsCert == "") != (*f.tlsKey == "") {
		return fail("--tls-cert and --tls-key go together")
	}
	tokens := f.tokens
	if *f.tokenFile != "" {
		more, err := readLines(*f.tokenFile)
		if err != nil {
			return fail("--token-file: %v", err)
		}
		tokens = append(tokens, more...)
	}
	var signKey []byte
	if *f.signKeyFile != "" {
		if signKey, err = readKey(*f.signKeyFile); err != nil {
			return fail("--sign-key-file: %v", err)
		}
	}
	return server.Config{
		Root: root, BlockSize: int(f.blockSize), Retry: *f.retry, Heartbeat: *f.heartbeat,
		WriteTimeout: *f.writeTimeout, ReadHeaderTimeout: *f.headerTimeout, CacheDir: cacheDir, Logger: logger,
		TrustedProxies: f.proxies, MetricsElsewhere: *f.metricsAddr != "",
		FollowIdle: *f.followIdle, FollowWait: *f.followWait, FollowTemp: f.followTemp,
		MaxStreams: *f.maxStreams, Tokens: tokens, SignKey: signKey, CORSOrigins: f.corsOrigins, CORSCredentials: *f.corsCreds,
	}, -1
}

// newLogger returns the access log in one of the formats of --log.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "none":
		return slog.New(slog.DiscardHandler), nil
	}
	return nil, fmt.Errorf("unknown log format %q", format)
}

// drain stops hs accepting and ends the open streams after their current
// block (clients resume elsewhere or after the restart), waiting up to
// grace for the handlers to return.
func drain(srv *server.Server, hs *http.Server, grace time.Duration) {
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go srv.Shutdown(sctx)
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// Streams still blocked writing to clients that read nothing: closing
		// their connections fails the writes at once. Give the handlers a
		// moment to log how their streams ended.
		hs.Close()
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(wctx)
	}
}

func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ferry", "manifests")
}

// openOrigin opens the origin of --origin.
func openOrigin(ctx context.Context, origin, s3Endpoint string) (server.Origin, error) {
	switch {
	case strings.HasPrefix(origin, "s3://"):
		return server.NewS3Origin(ctx, origin, s3Endpoint)
	case strings.HasPrefix(origin, "http://"), strings.HasPrefix(origin, "https://"):
		return server.NewHTTPOrigin(origin, nil)
	}
	return nil, fmt.Errorf("--origin %q: want https://host/prefix/ or s3://BUCKET/PREFIX (a local folder goes in --root)", origin)
}

// printWelcome tells the user where to point a browser or ferry get: what
// is served, and the first file of root if it is a local folder.
func printWelcome(w io.Writer, base, what, root string, blockSize int) {
	if root != "" {
		what, _ = filepath.Abs(root)
	}
	fmt.Fprintf(w, "ferry: serving %s at %s/ (block size %s)\n", what, base, formatSize(int64(blockSize)))
	fmt.Fprintf(w, "  page:      %s/\n  list:      %s%s\n", base, base, chunker.PathList)
	if root == "" {
		return
	}
	// The first file found is the example; stop walking there (the root
	// may hold millions).
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		u := base + chunker.PathSSE + escapePath(filepath.ToSlash(rel))
		fmt.Fprintf(w, "  try:       ferry get %s -o %s\n", u, filepath.Base(rel))
		fmt.Fprintf(w, "             curl -N %s\n", u)
		return fs.SkipAll
	})
}

// escapePath escapes each segment of a slash-separated path for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
