package client

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// seed starts a download that has seeds and no partial file: it fetches
// the manifest, copies into the partial file every block of the version
// found in a seed, and plans a pass over the rest.
func (d *download) seed(ctx context.Context) (stateFn, error) {
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.setUp(versionOf(m)); err != nil {
		return nil, err
	}
	d.meter.report("seeding")
	for _, p := range d.opts.Seeds {
		n, err := seedFrom(ctx, p, m, d.part, d.book)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err != nil {
			return nil, err
		}
		d.logf("%s: %d bytes of %s found", p, n, d.url)
	}
	d.order = nil // blocks will not arrive in order from 0: the file is hashed at the end
	seeded := d.book.bytes()
	d.res.BytesSeeded = seeded
	d.meter.reused.Add(seeded)
	d.reason = fmt.Sprintf("%d of %d bytes copied from seeds", seeded, m.Size)
	return d.planMissing()
}

// seedFrom copies into part the blocks of m that path holds and book
// does not yet: at any offset where m has rolling checksums (chunker.Weak),
// else at the block's own offset. Every copy is confirmed by the block's
// xxh3-64 first. It returns the bytes copied.
func seedFrom(ctx context.Context, path string, m *manifest.Manifest, part io.WriterAt, book *ledger) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: seed: %v", ErrDisk, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("%w: seed: %v", ErrDisk, err)
	}
	s := &seeder{m: m, part: part, book: book}
	if m.Weak != nil {
		err = s.roll(ctx, f, info.Size())
	}
	if err == nil {
		err = s.sameOffsets(ctx, f, info.Size()) // manifests without Weak, and the short last block
	}
	return s.copied, err
}

// seeder finds a manifest's blocks in one seed.
type seeder struct {
	m      *manifest.Manifest
	part   io.WriterAt
	book   *ledger
	copied int64
}

func (s *seeder) blockLen(i int64) int {
	_, n := chunker.Span(s.m.Size, s.m.BlockSize, i)
	return n
}

// take writes b as each of blocks that b is and that is still missing
// (several blocks can hold the same bytes), and reports whether it wrote any.
func (s *seeder) take(b []byte, blocks []int64) (bool, error) {
	return s.takeHashed(b, chunker.Hash(b), blocks)
}

// takeHashed is take of b whose xxh3-64 is h.
func (s *seeder) takeHashed(b []byte, h uint64, blocks []int64) (bool, error) {
	found := false
	for _, i := range blocks {
		if s.book.known[i] || uint64(s.m.Hashes[i]) != h || s.blockLen(i) != len(b) {
			continue
		}
		if _, err := s.part.WriteAt(b, i*int64(s.m.BlockSize)); err != nil {
			return found, diskError(err)
		}
		s.book.wrote(i, h) // verified: h is the manifest's hash of block i
		s.copied += int64(len(b))
		found = true
	}
	return found, nil
}

// sameOffsets checks each missing block at its own offset in the seed.
func (s *seeder) sameOffsets(ctx context.Context, f *os.File, size int64) error {
	buf := make([]byte, s.m.BlockSize)
	for i := range s.m.Blocks {
		n := s.blockLen(i)
		off := i * int64(s.m.BlockSize)
		if s.book.known[i] || off+int64(n) > size {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("%w: seed: %v", ErrDisk, err)
		}
		if _, err := s.take(buf[:n], []int64{i}); err != nil {
			return err
		}
	}
	// A short last block is not in the rolling search (its checksum is of
	// another length): it is also looked for at the seed's end, where a
	// version that grew or shrank before it keeps it.
	last := s.m.Blocks - 1
	if n := s.blockLen(last); last >= 0 && n < s.m.BlockSize && !s.book.known[last] && int64(n) <= size {
		if _, err := f.ReadAt(buf[:n], size-int64(n)); err != nil {
			return fmt.Errorf("%w: seed: %v", ErrDisk, err)
		}
		_, err := s.take(buf[:n], []int64{last})
		return err
	}
	return nil
}

// window is what the rolling search holds of a seed: buf is the seed's
// bytes from base on.
type window struct {
	f    *os.File
	size int64
	buf  []byte
	base int64
}

// at returns the seed's [off, off+n), shorter at the seed's end, reading
// ahead from off where buf does not hold it. off never goes back.
func (w *window) at(off, n int64) ([]byte, error) {
	if end := w.base + int64(len(w.buf)); off+n > end && end < w.size {
		w.buf = append(w.buf[:0], w.buf[off-w.base:]...)
		w.base = off
		k, err := w.f.ReadAt(w.buf[len(w.buf):cap(w.buf)], w.base+int64(len(w.buf)))
		w.buf = w.buf[:len(w.buf)+k]
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%w: seed: %v", ErrDisk, err)
		}
	}
	return w.buf[off-w.base : min(off+n-w.base, int64(len(w.buf)))], nil
}

// roll slides a window of one block along the seed, a byte at a time,
// and looks its rolling checksum up among the manifest's whole blocks; a
// block found moves the window past it (rsync's search). A bit set
// filters the lookups: a map lookup at every byte made the search 20
// times slower than the rolling itself.
func (s *seeder) roll(ctx context.Context, f *os.File, size int64) error {
	bs := int64(s.m.BlockSize)
	if size < bs {
		return nil
	}
	const bits = 1 << 22
	var filter [bits / 64]uint64
	byWeak := map[uint32][]int64{}
	byHash := map[uint64][]int64{}
	for i, w := range s.m.Weak {
		if int64(s.blockLen(int64(i))) == bs && !s.book.known[i] {
			byWeak[w] = append(byWeak[w], int64(i))
			byHash[uint64(s.m.Hashes[i])] = append(byHash[uint64(s.m.Hashes[i])], int64(i))
			filter[w%bits/64] |= 1 << (w % 64)
		}
	}
	if len(byWeak) == 0 {
		return nil
	}
	w := &window{f: f, size: size, buf: make([]byte, 0, 4*bs+(4<<20))}
	var off int64
	var r *chunker.Roller // nil at the start and after a block found
	for steps := 0; ; steps++ {
		if steps%(1<<20) == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if r == nil {
			var err error
			if off, err = s.takeRun(w, off, byHash); err != nil || off+bs > size {
				return err
			}
			win, err := w.at(off, bs)
			if err != nil {
				return err
			}
			r = chunker.NewRoller(win)
		}
		if sum := r.Sum(); filter[sum%bits/64]&(1<<(sum%64)) != 0 && byWeak[sum] != nil {
			win, err := w.at(off, bs) // held already: no read
			if err != nil {
				return err
			}
			found, err := s.take(win, byWeak[sum])
			if err != nil {
				return err
			}
			if found {
				off, r = off+bs, nil
				continue
			}
		}
		if off+bs >= size {
			return nil
		}
		win, err := w.at(off, bs+1) // the byte leaving and the one entering
		if err != nil {
			return err
		}
		r.Roll(win[0], win[bs])
		off++
	}
}

// takeRun takes the blocks of the seed from off on that are found whole,
// one after another, and returns the offset after them. Blocks found come
// in runs (what did not change between versions), and looking a window up
// by its xxh3-64 is ten times faster than starting a rolling checksum,
// which the 1 GiB seed bench spent 0.54 of 1.4 CPU-s on.
func (s *seeder) takeRun(w *window, off int64, byHash map[uint64][]int64) (int64, error) {
	bs := int64(s.m.BlockSize)
	for off+bs <= w.size {
		win, err := w.at(off, bs)
		if err != nil {
			return off, err
		}
		h := chunker.Hash(win)
		found, err := s.takeHashed(win, h, byHash[h])
		if err != nil || !found {
			return off, err
		}
		off += bs
	}
	return off, nil
}
