package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/zeebo/xxh3"
)

// Version is the manifest format version this package writes and reads.
const Version = 1

// maxJSON bounds the size of a manifest a client will read: 64 MiB holds the
// hashes of a 800 GiB file at 256 KiB blocks.
const maxJSON = 64 << 20

// Hash is the xxh3-64 of one block, written in JSON as 16 lowercase hex.
type Hash uint64

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(chunker.FormatHash(uint64(h))), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := chunker.ParseHash(string(b))
	if err != nil {
		return fmt.Errorf("%w: block hash %q", ErrInvalid, b)
	}
	*h = Hash(v)
	return nil
}

// Manifest describes one version of a file.
type Manifest struct {
	Version   int       `json:"version"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	Blocks    int64     `json:"blocks"`
	MTime     time.Time `json:"mtime"`
	ETag      string    `json:"etag"`
	Hashes    []Hash    `json:"hashes"`
	// Weak is each block's rolling checksum (chunker.Weak), with which a
	// client finds blocks of this version at any offset of an old copy.
	// Manifests from before it have none; clients then match blocks at
	// the same offset only.
	Weak []uint32 `json:"weak,omitempty"`
	// Live marks the manifest of a file still being written: it lists the
	// whole blocks complete so far (Size is their bytes) and has no
	// whole-file digests yet.
	Live    bool   `json:"live,omitempty"`
	XXH3128 string `json:"xxh3_128,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// SharedSuffix ends the name of a manifest kept beside its file (written by
// ferry manifest), which every server over shared storage can use instead
// of hashing the file itself.
const SharedSuffix = ".ferry-manifest"

// ETag names the version of a file with the given size and modification
// time cut at blockSize. It reads nothing: equal stats give equal etags.
func ETag(size int64, mtime time.Time, blockSize int) string {
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, size, 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, mtime.UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(blockSize), 16)
	return string(b)
}

// Digests are the whole-file digests of a version.
type Digests struct {
	XXH3128 string
	SHA256  string
}

// Match reports whether d, computed from a local file, agrees with want, the
// server's: the xxh3-128 always, the SHA-256 when d has one.
func (d Digests) Match(want Digests) bool {
	return d.XXH3128 == want.XXH3128 && (d.SHA256 == "" || d.SHA256 == want.SHA256)
}

// Summer computes the whole-file digests as the blocks go by, in order.
type Summer struct {
	x *xxh3.Hasher128
	s hash.Hash // nil: no SHA-256
}

// NewSummer returns a Summer at the start of a file, for both digests.
func NewSummer() *Summer { return &Summer{x: xxh3.New128(), s: sha256.New()} }

// NewXXH3Summer returns a Summer of the xxh3-128 alone, whose Digests have
// an empty SHA256. SHA-256 costs about thirty times as much CPU (0.6 s per
// GiB against 0.02 on the machine of docs/PERFORMANCE.md).
func NewXXH3Summer() *Summer { return &Summer{x: xxh3.New128()} }

// Write adds the next bytes of the file.
func (s *Summer) Write(p []byte) (int, error) {
	s.x.Write(p)
	if s.s != nil {
		s.s.Write(p)
	}
	return len(p), nil
}

// Digests returns the digests of everything written so far.
func (s *Summer) Digests() Digests {
	x := s.x.Sum128().Bytes()
	d := Digests{XXH3128: hex.EncodeToString(x[:])}
	if s.s != nil {
		d.SHA256 = hex.EncodeToString(s.s.Sum(nil))
	}
	return d
}

// Build reads size bytes of r and returns the manifest of that version.
// It checks ctx between blocks.
func Build(ctx context.Context, r io.ReaderAt, path string, size int64, mtime time.Time, blockSize int) (*Manifest, error) {
	return BuildCounting(ctx, r, path, size, mtime, blockSize, nil)
}

// BuildCounting is Build, adding to hashed, if not nil, the bytes hashed so
// far, for whoever waits for the manifest of a large file.
func BuildCounting(ctx context.Context, r io.ReaderAt, path string, size int64, mtime time.Time, blockSize int, hashed *atomic.Int64) (*Manifest, error) {
	c, err := chunker.New(r, size, blockSize)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Version: Version, Path: path, Size: size, BlockSize: blockSize, Blocks: c.Count(),
		MTime: mtime.UTC(), ETag: ETag(size, mtime, blockSize), Hashes: make([]Hash, c.Count()),
		Weak: make([]uint32, c.Count()),
	}
	sum := NewSummer()
	for i := range c.Count() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, b, err := c.Block(i)
		if err != nil {
			return nil, err
		}
		m.Hashes[i] = Hash(chunker.Hash(b))
		m.Weak[i] = chunker.Weak(b)
		sum.Write(b)
		if hashed != nil {
			hashed.Add(int64(len(b)))
		}
	}
	d := sum.Digests()
	m.XXH3128, m.SHA256 = d.XXH3128, d.SHA256
	return m, nil
}

// Decode reads and validates one JSON manifest.
func Decode(r io.Reader) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(r, maxJSON))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks that m is internally consistent.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case m.Version != Version:
		return bad("format version %d, want %d", m.Version, Version)
	case m.Size < 0:
		return bad("negative size %d", m.Size)
	case chunker.CheckBlockSize(m.BlockSize) != nil:
		return bad("block size %d out of range", m.BlockSize)
	case m.Blocks != chunker.Count(m.Size, m.BlockSize):
		return bad("%d blocks for %d bytes at block size %d", m.Blocks, m.Size, m.BlockSize)
	case int64(len(m.Hashes)) != m.Blocks:
		return bad("%d hashes for %d blocks", len(m.Hashes), m.Blocks)
	case m.Weak != nil && int64(len(m.Weak)) != m.Blocks:
		return bad("%d weak checksums for %d blocks", len(m.Weak), m.Blocks)
	case m.ETag == "":
		return bad("no etag")
	case m.Live && m.Size%int64(m.BlockSize) != 0:
		return bad("a live manifest of %d bytes, not whole blocks of %d", m.Size, m.BlockSize)
	case m.Live && (m.XXH3128 != "" || m.SHA256 != ""):
		return bad("a live manifest with whole-file digests")
	case m.Live:
		return nil
	case !isHex(m.XXH3128, 32):
		return bad("xxh3_128 %q is not 32 hex digits", m.XXH3128)
	case !isHex(m.SHA256, 64):
		return bad("sha256 %q is not 64 hex digits", m.SHA256)
	}
	return nil
}

// Digests returns the whole-file digests of m.
func (m *Manifest) Digests() Digests { return Digests{XXH3128: m.XXH3128, SHA256: m.SHA256} }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
