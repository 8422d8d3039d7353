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
	fs := flag.NewFlagSet("ferry serve", flag.ContinueOnError)
	root := fs.String("root", "", "folder to serve (default: ./testdata, the sample files)")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	blockSize := byteSize(chunker.DefaultBlockSize)
	fs.Var(&blockSize, "block-size", "block size, 1KiB to 16MiB")
	retry := fs.Duration("retry", 1500*time.Millisecond, "reconnection delay sent to clients")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "idle time after which a stream sends a ping comment")
	writeTimeout := fs.Duration("write-timeout", 30*time.Second, "drop a client that accepts no bytes for this long")
	headerTimeout := fs.Duration("read-header-timeout", 10*time.Second, "drop a client that has not sent its request headers by then")
	cacheDir := fs.String("cache-dir", defaultCacheDir(), "folder keeping block hashes across restarts")
	noCache := fs.Bool("no-cache", false, "keep block hashes in memory only")
	logFormat := fs.String("log", "text", "access log format on stderr: text, json or none")
	grace := fs.Duration("shutdown-timeout", 5*time.Second, "how long SIGINT/SIGTERM waits for open streams to end")
	maxStreams := fs.Int("max-streams", 0, "concurrent streams at most; more get 503 with Retry-After (0: no limit)")
	var tokens, corsOrigins listFlag
	fs.Var(&tokens, "token", "bearer token required for the file endpoints (repeatable; prefer --token-file)")
	tokenFile := fs.String("token-file", "", "file of bearer tokens, one per line")
	signKeyFile := fs.String("sign-key-file", "", "HMAC key for signed URLs (ferry sign); also requires a token or signature")
	fs.Var(&corsOrigins, "cors-origin", "origin allowed to read the files from a page (repeatable, or comma-separated; * for any)")
	corsCreds := fs.Bool("cors-credentials", false, "allow credentials (cookies, Authorization) from the allowed origins")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM); serves HTTPS and HTTP/2")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry serve [--root DIR] [--addr HOST:PORT] [--block-size 256KiB] [flags]")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry serve: unexpected argument %q (the folder goes in --root)\n", fs.Arg(0))
		return exitUsage
	}
	if err := chunker.CheckBlockSize(int(blockSize)); err != nil {
		fmt.Fprintf(stderr, "ferry serve: --block-size %s: must be between 1KiB and 16MiB\n", blockSize.String())
		return exitUsage
	}
	if *root == "" {
		*root = "testdata"
		if st, err := os.Stat(*root); err != nil || !st.IsDir() {
			fmt.Fprintln(stderr, "ferry serve: no --root given and no ./testdata folder here; pass --root DIR")
			return exitUsage
		}
	}
	var logger *slog.Logger
	switch *logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	case "none":
		logger = slog.New(slog.DiscardHandler)
	default:
		fmt.Fprintf(stderr, "ferry serve: --log %q: want text, json or none\n", *logFormat)
		return exitUsage
	}
	if *noCache {
		*cacheDir = ""
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "ferry serve: --tls-cert and --tls-key go together")
		return exitUsage
	}
	if *tokenFile != "" {
		more, err := readLines(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "ferry serve: --token-file: %v\n", err)
			return exitUsage
		}
		tokens = append(tokens, more...)
	}
	var signKey []byte
	if *signKeyFile != "" {
		var err error
		if signKey, err = readKey(*signKeyFile); err != nil {
			fmt.Fprintf(stderr, "ferry serve: --sign-key-file: %v\n", err)
			return exitUsage
		}
	}

	srv, err := server.New(server.Config{
		Root: *root, BlockSize: int(blockSize), Retry: *retry, Heartbeat: *heartbeat,
		WriteTimeout: *writeTimeout, ReadHeaderTimeout: *headerTimeout, CacheDir: *cacheDir, Logger: logger, MaxStreams: *maxStreams,
		Tokens: tokens, SignKey: signKey, CORSOrigins: corsOrigins, CORSCredentials: *corsCreds,
	})
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return exitFailure
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return exitFailure
	}
	hs := srv.HTTPServer(ln.Addr().String())
	base := "http://" + ln.Addr().String()
	if *tlsCert != "" {
		base = "https://" + ln.Addr().String()
	}
	printWelcome(stdout, base, *root, int(blockSize))

	served := make(chan error, 1)
	go func() { // exits when hs is shut down
		if *tlsCert != "" {
			served <- hs.ServeTLS(ln, *tlsCert, *tlsKey) // HTTP/2 is negotiated by ALPN
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
	logger.Info("shutting down", "cause", context.Cause(ctx).Error())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	// End the streams (clients resume elsewhere or after the restart) while
	// the HTTP server stops accepting and waits for handlers to return.
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
	return exitOK
}

func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ferry", "manifests")
}

// printWelcome tells the user where to point a browser or ferry get.
func printWelcome(w io.Writer, base, root string, blockSize int) {
	abs, _ := filepath.Abs(root)
	fmt.Fprintf(w, "ferry: serving %s at %s/ (block size %s)\n", abs, base, formatSize(int64(blockSize)))
	fmt.Fprintf(w, "  page:      %s/\n  list:      %s/api/files\n", base, base)
	var n int
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || n >= 5 {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if n == 0 {
			fmt.Fprintf(w, "  try:       ferry get %s/sse/%s -o %s\n", base, escapePath(rel), filepath.Base(rel))
			fmt.Fprintf(w, "             curl -N %s/sse/%s\n", base, escapePath(rel))
		}
		n++
		return nil
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
