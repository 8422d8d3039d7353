package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// The seed case (issue 14): ferry get --seed with an older version of
// the file that differs from it in 1 % of its blocks and by 1 KiB
// inserted at 10 %, zsync's test of the same work.

// seedEdits returns the blocks of a file of size bytes that its seed has
// changed (every hundredth, from the fiftieth) and where the seed has
// 1 KiB more (inside the block at 10 %, off its boundary).
func seedEdits(size int64, bs int) (changed []int64, insertAt int64) {
	for i := int64(50); i*int64(bs) < size; i += 100 {
		changed = append(changed, i)
	}
	return changed, size/10/int64(bs)*int64(bs) + int64(bs)/3
}

// seedPath is the seed of the data file of kind.
func (b *bench) seedPath(kind string) string { return filepath.Join(b.out, kind+".seed") }

// writeSeed writes the seed of the data file of kind, unless one is there
// of the size it would have.
func (b *bench) writeSeed(kind string) error {
	p := b.seedPath(kind)
	if info, err := os.Stat(p); err == nil && info.Size() == b.size+1024 {
		return nil
	}
	in, err := os.Open(filepath.Join(b.data, kind+".bin"))
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	changed, insertAt := seedEdits(b.size, b.blockSize)
	r := rand.New(rand.NewPCG(14, 14))
	noise := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	buf := make([]byte, b.blockSize)
	for i := int64(0); ; i++ {
		n, err := io.ReadFull(in, buf)
		if n == 0 {
			break
		}
		blk := buf[:n]
		if len(changed) > 0 && changed[0] == i {
			changed = changed[1:]
			copy(blk[min(100, n):], noise(100))
		}
		if at := insertAt - i*int64(b.blockSize); at >= 0 && at < int64(n) {
			w.Write(blk[:at])
			w.Write(noise(1024))
			blk = blk[at:]
		}
		if _, err := w.Write(blk); err != nil {
			out.Close()
			return err
		}
		if err != nil {
			break // the short last block
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readSeed reads the seed once, as the seed case's reference: the time of
// that read plus fetching the rest bounds the case.
func (b *bench) readSeed(ctx context.Context, kind string) (float64, error) {
	f, err := os.Open(b.seedPath(kind))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	if _, err := io.Copy(io.Discard, f); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), ctx.Err()
}

// copySeed copies the seed to a file beside out and syncs it, as a second
// reference: the least that building the new file from the seed costs any
// tool (zsync too writes its output), which reading alone leaves out.
func (b *bench) copySeed(ctx context.Context, kind, out string) (float64, error) {
	src, err := os.Open(b.seedPath(kind))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dst, err := os.Create(out + ".seedcopy")
	if err != nil {
		return 0, err
	}
	defer os.Remove(dst.Name())
	defer dst.Close()
	start := time.Now()
	if _, err := io.Copy(dst, src); err != nil {
		return 0, err
	}
	if err := dst.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), ctx.Err()
}

// reportSeed prints what the seed case fetched against its bounds.
func reportSeed(w io.Writer, in reportInput, c benchCase, r benchResult) {
	changed, _ := seedEdits(in.size, in.blockSize)
	edits := int64(len(changed)) + 1
	bound := int64(1.1*float64(len(changed)*100+1024)) + edits*int64(in.blockSize)
	fmt.Fprintf(w, "\nseed: %s, the seed differs in %d blocks and by 1 KiB inserted at 10 %%\n", c.name, len(changed))
	fmt.Fprintf(w, "  bytes_fetched: %d = %.2f blocks per change (bound: 1.1 × changed bytes + a block per change = %d, %s)\n",
		r.fetched, float64(r.fetched)/float64(edits)/float64(in.blockSize), bound, verdict(r.fetched <= bound))
	base, ok := in.results[c.baseline()]
	if !ok {
		return
	}
	rest := base.seconds * float64(r.fetched) / float64(in.size)
	fmt.Fprintf(w, "  time: %.2f s; reading the seed once %.2f s + fetching the rest at %s's rate %.2f s = %.2f s (%s)\n",
		r.seconds, r.seedRead, c.baseline(), rest, r.seedRead+rest, verdict(r.seconds <= r.seedRead+rest))
	if r.seedCopy > 0 {
		fmt.Fprintf(w, "  for reference: copying the seed (read, write, fsync) %.2f s + the rest %.2f s = %.2f s: ferry at %.2f× that\n",
			r.seedCopy, rest, r.seedCopy+rest, r.seconds/(r.seedCopy+rest))
	}
}
