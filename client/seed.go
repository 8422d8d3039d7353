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
	d.book = d.book.rebase(m)
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
	return int(min(int64(s.m.BlockSize), s.m.Size-i*int64(s.m.BlockSize)))
}

// take writes b as block i, and every other block with the same hash,
// where b is what they hold and they are still missing.
func (s *seeder) take(b []byte, blocks []int64) error {
	return s.takeHashed(b, chunker.Hash(b), blocks)
}

// takeHashed is take of b whose xxh3-64 is h.
func (s *seeder) takeHashed(b []byte, h uint64, blocks []int64) error {
	for _, i := range blocks {
		if s.book.known[i] || uint64(s.m.Hashes[i]) != h || s.blockLen(i) != len(b) {
			continue
		}
		if _, err := s.part.WriteAt(b, i*int64(s.m.BlockSize)); err != nil {
			return diskError(err)
		}
		s.book.hashed(i, h)
		s.copied += int64(len(b))
	}
	return nil
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
		if err := s.take(buf[:n], []int64{i}); err != nil {
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
		return s.take(buf[:n], []int64{last})
	}
	return nil
}

// roll slides a window of one block along the seed, a byte at a time,
// and looks its rolling checksum up among the manifest's whole blocks; a
// block found moves the window past it (rsync's search). A bit set
// filters the lookups: a map lookup at every byte made the search 20
// times slower than the rolling itself.
func (s *seeder) roll(ctx context.Context, f *os.File, size int64) error {
	bs := s.m.BlockSize
	if size < int64(bs) {
		return nil
	}
	const bits = 1 << 22
	var filter [bits / 64]uint64
	byWeak := map[uint32][]int64{}
	byHash := map[uint64][]int64{}
	for i, w := range s.m.Weak {
		if s.blockLen(int64(i)) == bs && !s.book.known[i] {
			byWeak[w] = append(byWeak[w], int64(i))
			byHash[uint64(s.m.Hashes[i])] = append(byHash[uint64(s.m.Hashes[i])], int64(i))
			filter[w%bits/64] |= 1 << (w % 64)
		}
	}
	if len(byWeak) == 0 {
		return nil
	}
	// buf holds the seed's bytes from base on; the window is buf[at:at+bs].
	buf := make([]byte, 0, 4*bs+(4<<20))
	var base int64
	// fill makes buf hold the seed's [off, off+n), or up to its end.
	fill := func(off, n int64) error {
		if off+n <= base+int64(len(buf)) || base+int64(len(buf)) == size {
			return nil
		}
		keep := buf[off-base:]
		buf = append(buf[:0], keep...)
		base = off
		k, err := f.ReadAt(buf[len(buf):cap(buf)], base+int64(len(buf)))
		buf = buf[:len(buf)+k]
		if err != nil && err != io.EOF {
			return fmt.Errorf("%w: seed: %v", ErrDisk, err)
		}
		return nil
	}
	off := int64(0)
	if err := fill(off, int64(bs)); err != nil {
		return err
	}
	r := chunker.NewRoller(buf[:bs])
	for steps := 0; ; steps++ {
		if steps%(1<<20) == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		w := r.Sum()
		if filter[w%bits/64]&(1<<(w%64)) != 0 {
			if blocks, ok := byWeak[w]; ok {
				before := s.copied
				win := buf[off-base : off-base+int64(bs)]
				if err := s.take(win, blocks); err != nil {
					return err
				}
				if s.copied > before { // found: go on after it
					off += int64(bs)
					// Blocks found tend to come in runs (what did not
					// change between versions): the window after a found
					// block is first looked up whole by its xxh3-64, ten
					// times faster than starting a rolling checksum,
					// which this seed's 1 GiB bench spent 0.54 of 1.4
					// CPU-s on.
					for {
						if off+int64(bs) > size {
							return nil
						}
						if err := fill(off, int64(bs)); err != nil {
							return err
						}
						win := buf[off-base : off-base+int64(bs)]
						h := chunker.Hash(win)
						had := s.copied
						if err := s.takeHashed(win, h, byHash[h]); err != nil {
							return err
						}
						if s.copied == had {
							break
						}
						off += int64(bs)
					}
					r = chunker.NewRoller(buf[off-base : off-base+int64(bs)])
					continue
				}
			}
		}
		if off+int64(bs) >= size {
			return nil
		}
		if err := fill(off, int64(bs)+1); err != nil { // the byte leaving and the one entering
			return err
		}
		r.Roll(buf[off-base], buf[off+int64(bs)-base])
		off++
	}
}
