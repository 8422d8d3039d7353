package client

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// checkBlocks hashes the blocks of f against m and returns the indexes of
// those that do not match. If sum is not nil the file's bytes are fed to it.
func checkBlocks(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, sum *manifest.Summer) ([]int64, manifest.Digests, error) {
	c, err := chunker.New(f, m.Size, m.BlockSize)
	if err != nil {
		return nil, manifest.Digests{}, err
	}
	var bad []int64
	for i := range c.Count() {
		if err := ctx.Err(); err != nil {
			return nil, manifest.Digests{}, context.Cause(ctx)
		}
		_, b, err := c.Block(i)
		if err != nil {
			bad = append(bad, i) // short file: that block and the rest are missing
			continue
		}
		if chunker.Hash(b) != uint64(m.Hashes[i]) {
			bad = append(bad, i)
		}
		if sum != nil {
			sum.Write(b)
		}
	}
	var d manifest.Digests
	if sum != nil {
		d = sum.Digests()
	}
	return bad, d, nil
}

// checkFile checks a complete local file against m: its size, every block
// and the whole-file digests.
func checkFile(ctx context.Context, f *os.File, m *manifest.Manifest, sum *manifest.Summer) ([]int64, manifest.Digests, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, manifest.Digests{}, diskError(err)
	}
	if info.Size() != m.Size {
		return []int64{-1}, manifest.Digests{}, nil
	}
	return checkBlocks(ctx, f, m, sum)
}

// digestFile feeds the first size bytes of f to sum and returns its digests.
func digestFile(ctx context.Context, f io.ReaderAt, size int64, sum *manifest.Summer) (manifest.Digests, error) {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return manifest.Digests{}, context.Cause(ctx)
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		sum.Write(buf[:n])
		off += int64(n)
		if err != nil && (err != io.EOF || off < size) {
			return manifest.Digests{}, diskError(err)
		}
	}
	return sum.Digests(), nil
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Path      string  `json:"path"`
	Size      int64   `json:"size"`
	Remote    int64   `json:"remote_size"`
	Blocks    int64   `json:"blocks"`
	BadBlocks []int64 `json:"bad_blocks"`
	SHA256    string  `json:"sha256"`
	OK        bool    `json:"ok"`
}

// Verify checks a local file against the manifest of the file at rawURL and
// lists the blocks that differ. It returns ErrIntegrity if any do.
func (c *Client) Verify(ctx context.Context, path, rawURL string, opts VerifyOptions) (*VerifyReport, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ep, err := resolve(rawURL)
	if err != nil {
		return nil, err
	}
	d := newDownload(c.config(), Options{Logf: opts.Logf}, rawURL, ep, path)
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, diskError(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, diskError(err)
	}
	rep := &VerifyReport{Path: path, Size: info.Size(), Remote: m.Size, Blocks: m.Blocks, BadBlocks: []int64{}}
	bad, dig, err := checkBlocks(ctx, f, m, manifest.NewSummer())
	if err != nil {
		return nil, err
	}
	rep.BadBlocks = append(rep.BadBlocks, bad...)
	if info.Size() == m.Size {
		rep.SHA256 = dig.SHA256
	}
	rep.OK = len(bad) == 0 && info.Size() == m.Size && dig == m.Digests()
	if !rep.OK {
		return rep, fmt.Errorf("%w: %s differs from %s in %d of %d blocks", ErrIntegrity, path, rawURL, len(bad), m.Blocks)
	}
	return rep, nil
}
