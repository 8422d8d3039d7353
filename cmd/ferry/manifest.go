package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// runManifest writes FILE.ferry-manifest beside each FILE: the manifest
// ferry serve would compute, which every replica over the same shared
// folder then reads instead of hashing the file itself.
func runManifest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry manifest", flag.ContinueOnError)
	blockSize := byteSize(chunker.DefaultBlockSize)
	fs.Var(&blockSize, "block-size", "block size, as ferry serve's --block-size (a manifest of another block size is not used)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry manifest [--block-size 256KiB] FILE...")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	if err := chunker.CheckBlockSize(int(blockSize)); err != nil {
		fmt.Fprintf(stderr, "ferry manifest: --block-size %s: must be between 1KiB and 16MiB\n", blockSize.String())
		return exitUsage
	}
	for _, p := range fs.Args() {
		m, err := writeManifest(ctx, p, int(blockSize))
		if ctx.Err() != nil {
			return interruptCode(ctx)
		}
		if err != nil {
			fmt.Fprintf(stderr, "ferry manifest: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s%s: %d blocks of %s, sha256 %s\n", p, manifest.SharedSuffix, m.Blocks, formatSize(int64(m.BlockSize)), m.SHA256)
	}
	return exitOK
}

// writeManifest hashes the file at p and writes its manifest beside it,
// atomically. A file that changes while it is hashed is an error.
func writeManifest(ctx context.Context, p string, blockSize int) (*manifest.Manifest, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	m, err := manifest.Build(ctx, f, filepath.Base(p), info.Size(), info.ModTime(), blockSize)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", p, err)
	}
	if now, err := f.Stat(); err != nil || now.Size() != info.Size() || !now.ModTime().Equal(info.ModTime()) {
		return nil, fmt.Errorf("%s changed while it was hashed; run ferry manifest again when it is complete", p)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".ferry-manifest-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	return m, os.Rename(tmp.Name(), p+manifest.SharedSuffix)
}
