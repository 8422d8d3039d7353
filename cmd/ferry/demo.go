package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/client"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

// runDemo is Ferry's main job on the sample data, end to end: it serves a
// folder on 127.0.0.1, downloads every file through a proxy that cuts each
// connection after a while, and checks each result against the original.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("ferry demo", flag.ContinueOnError)
	root := flags.String("root", "testdata", "folder to serve and download")
	cutAt := byteSize(96 << 10)
	flags.Var(&cutAt, "cut-every", "the proxy cuts each connection after this many bytes (0: never)")
	blockSize := byteSize(16 << 10)
	flags.Var(&blockSize, "block-size", "block size")
	keep := flags.String("o", "", "folder for the downloads (default: a temporary folder, removed)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry demo [--root testdata] [--cut-every 96KiB] [-o DIR]")
		flags.PrintDefaults()
	}
	if code := parseFlags(flags, args, stderr); code >= 0 {
		return code
	}
	if st, err := os.Stat(*root); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "ferry demo: %s is not a folder; run it in Ferry's source tree or pass --root DIR\n", *root)
		return exitUsage
	}
	srv, err := server.New(server.Config{Root: *root, BlockSize: int(blockSize), Retry: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(stderr, "ferry demo: %v\n", err)
		return exitFailure
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "ferry demo: %v\n", err)
		return exitFailure
	}
	hs := srv.HTTPServer(ln.Addr().String())
	go hs.Serve(ln) // exits at hs.Close below
	defer hs.Close()
	proxy, err := servertest.NewProxy(ln.Addr().String(), func(int) servertest.Fault { return servertest.Fault{CutAt: int64(cutAt)} })
	if err != nil {
		fmt.Fprintf(stderr, "ferry demo: %v\n", err)
		return exitFailure
	}
	defer proxy.Close()

	dir := *keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ferry-demo-"); err != nil {
			fmt.Fprintf(stderr, "ferry demo: %v\n", err)
			return exitDisk
		}
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(stdout, "ferry demo: serving %s on http://%s, downloading through a proxy that cuts every connection after %s\n\n",
		*root, ln.Addr(), formatSize(int64(cutAt)))
	fmt.Fprintf(stdout, "%-28s %10s %6s %10s  %s\n", "file", "bytes", "cuts", "verified", "sha256")
	// One Client for every file: their downloads share its connections.
	c := &client.Client{Retries: 20, IdleTimeout: 10 * time.Second}
	defer c.Close()
	failed := downloadAll(ctx, c, *root, "http://"+proxy.Addr, dir, stdout)
	if ctx.Err() != nil {
		return interruptCode(ctx)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\n%d files failed\n", failed)
		return exitIntegrity
	}
	fmt.Fprintln(stdout, "\nevery file arrived byte-identical, despite the cuts. Next: 'go run ./cmd/ferry serve' and open the page.")
	return exitOK
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// downloadAll downloads every file below root from the server at base into
// dir, checks each against the file it came from, prints a line for each
// and returns how many failed.
func downloadAll(ctx context.Context, c *client.Client, root, base, dir string, stdout io.Writer) (failed int) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || ctx.Err() != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out := filepath.Join(dir, filepath.Base(p))
		res, err := c.Download(ctx, base+chunker.PathSSE+escapePath(filepath.ToSlash(rel)), out,
			client.Options{Force: true, SHA256: true})
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%-28s FAILED: %v\n", rel, err)
			return nil
		}
		ok := "yes"
		if want, err := fileSHA256(p); err != nil || want != res.SHA256 {
			ok, failed = "NO", failed+1
		}
		fmt.Fprintf(stdout, "%-28s %10d %6d %10s  %s\n", rel, res.Size, res.Reconnects, ok, res.SHA256)
		return nil
	})
	return failed
}
