package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	"github.com/ferry-dev/ferry/server"
)

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// readLines reads non-empty, non-comment lines of a file.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// readKey reads an HMAC key: the file's bytes without surrounding space.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k := []byte(strings.TrimSpace(string(b)))
	if len(k) < 16 {
		return nil, errors.New("the key must be at least 16 bytes")
	}
	return k, nil
}

// runSign prints a signed URL for one file, valid for one version of it
// until the TTL runs out: for a browser's EventSource, which cannot send
// headers, or a CI job that should get this file and nothing else.
func runSign(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry sign", flag.ContinueOnError)
	root := fs.String("root", "testdata", "the folder the server serves")
	keyFile := fs.String("key-file", "", "the HMAC key file given to ferry serve --sign-key-file")
	ttl := fs.Duration("ttl", time.Hour, "how long the URL stays valid")
	base := fs.String("base", "http://127.0.0.1:8080", "the server's base URL")
	blockSize := byteSize(chunker.DefaultBlockSize)
	fs.Var(&blockSize, "block-size", "the server's block size (it is part of the version)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry sign PATH --key-file FILE [--root DIR] [--ttl 1h] [--base URL]\n\nPATH is the file's path below the served root.")
		fs.PrintDefaults()
	}
	pos, code := parseInterleaved(fs, args, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 || *keyFile == "" || *ttl <= 0 {
		fs.Usage()
		return exitUsage
	}
	key, err := readKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "ferry sign: --key-file: %v\n", err)
		return exitUsage
	}
	rel := strings.TrimPrefix(filepath.ToSlash(pos[0]), "/")
	root2, err := os.OpenRoot(*root)
	if err != nil {
		fmt.Fprintf(stderr, "ferry sign: %v\n", err)
		return exitUsage
	}
	defer root2.Close()
	info, err := root2.Stat(rel)
	if err != nil || !info.Mode().IsRegular() {
		fmt.Fprintf(stderr, "ferry sign: %s is not a file under %s\n", rel, *root)
		return exitUsage
	}
	etag := manifest.ETag(info.Size(), info.ModTime(), int(blockSize))
	q := server.Sign(key, rel, etag, time.Now().Add(*ttl)).Encode()
	b := strings.TrimRight(*base, "/")
	fmt.Fprintf(stdout, "%s/sse/%s?%s\n", b, escapePath(rel), q)
	fmt.Fprintf(stderr, "ferry sign: valid until %s for this version of %s; also at /files/ and /manifest/ with the same query\n",
		time.Now().Add(*ttl).UTC().Format(time.RFC3339), rel)
	return exitOK
}
