package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"

	"context"
)

// Sample data for tests and benchmarks: the same seed, kind and size give
// the same bytes on every machine (gen_test.go pins their digests).
func runGen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry gen", flag.ContinueOnError)
	var size byteSize
	fs.Var(&size, "size", "size of the file, e.g. 1GiB")
	seed := fs.Uint64("seed", 1, "seed; the same seed gives the same bytes")
	kind := fs.String("kind", "random", "random (incompressible) or text (log lines, compressible)")
	out := fs.String("o", "", "output file (- for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry gen --size 1GiB [--seed 1] [--kind random|text] -o FILE")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if *out == "" || (*kind != "random" && *kind != "text") {
		fs.Usage()
		return exitUsage
	}
	w := io.Writer(stdout)
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "ferry gen: %v\n", err)
			return exitDisk
		}
		defer f.Close()
		w = f
	}
	if err := writeSample(w, *kind, *seed, int64(size)); err != nil {
		fmt.Fprintf(stderr, "ferry gen: %v\n", err)
		return exitDisk
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "ferry gen: %v\n", err)
			return exitDisk
		}
	}
	return exitOK
}

// writeSample writes size bytes of deterministic sample data.
func writeSample(w io.Writer, kind string, seed uint64, size int64) error {
	var src io.Reader
	switch kind {
	case "random":
		var key [32]byte
		for i := range 4 {
			key[i*8] = byte(seed >> (8 * i))
		}
		src = rand.NewChaCha8(key)
	case "text":
		src = &logLines{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := io.CopyN(bw, src, size); err != nil {
		return err
	}
	return bw.Flush()
}

// logLines produces plausible server log lines: compressible, not trivial.
type logLines struct {
	r    *rand.Rand
	buf  []byte
	line int64
}

var (
	levels = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	paths  = []string{"/sse/dist/app.tar.gz", "/files/images/base.qcow2", "/manifest/models/weights.bin", "/api/files", "/healthz"}
	notes  = []string{"stream complete", "client gone", "resumed at next block", "range served", "cache hit", "cache miss, hashing"}
)

func (l *logLines) Read(p []byte) (int, error) {
	for len(l.buf) < len(p) {
		l.line++
		b := l.buf
		b = append(b, "2026-11-23T10:"...)
		b = strconv.AppendInt(b, 10+l.line/6000%50, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, 10+l.line/100%50, 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, 100000+l.r.Int64N(900000), 10)
		b = append(b, "Z "...)
		b = append(b, levels[l.r.IntN(len(levels))]...)
		b = append(b, " ferry: path="...)
		b = append(b, paths[l.r.IntN(len(paths))]...)
		b = append(b, " remote=127.0.0."...)
		b = strconv.AppendInt(b, 1+l.r.Int64N(254), 10)
		b = append(b, " bytes="...)
		b = strconv.AppendInt(b, l.r.Int64N(1<<28), 10)
		b = append(b, " msg=\""...)
		b = append(b, notes[l.r.IntN(len(notes))]...)
		b = append(b, "\"\n"...)
		l.buf = b
	}
	n := copy(p, l.buf)
	l.buf = append(l.buf[:0], l.buf[n:]...)
	return n, nil
}
