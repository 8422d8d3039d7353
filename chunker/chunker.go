package chunker

import (
	"fmt"
	"io"
	"strconv"

	"github.com/zeebo/xxh3"
)

const (
	// DefaultBlockSize is 256 KiB, the size measured to suit browsers best.
	DefaultBlockSize = 256 << 10
	// MinBlockSize is the smallest block size a server may use.
	MinBlockSize = 1 << 10
	// MaxBlockSize is the largest block size a server may use; clients refuse
	// larger blocks so that a hostile server cannot make them allocate more.
	MaxBlockSize = 16 << 20
)

// CheckBlockSize returns ErrBlockSize unless n is a usable block size.
func CheckBlockSize(n int) error {
	if n < MinBlockSize || n > MaxBlockSize {
		return fmt.Errorf("%w: %d (want %d..%d bytes)", ErrBlockSize, n, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// Count returns the number of blocks of a file of the given size.
func Count(size int64, blockSize int) int64 {
	if size <= 0 {
		return 0
	}
	return (size + int64(blockSize) - 1) / int64(blockSize)
}

// Span returns the offset and raw length of block i of a file.
func Span(size int64, blockSize int, i int64) (off int64, n int) {
	off = i * int64(blockSize)
	return off, int(min(int64(blockSize), size-off))
}

// Hash returns the xxh3-64 hash of a block's raw bytes.
func Hash(b []byte) uint64 { return xxh3.Hash(b) }

// FormatHash writes h as 16 lowercase hex digits, the form used on the wire
// and in manifests.
func FormatHash(h uint64) string {
	var b [16]byte
	return string(appendHash(b[:0], h))
}

// ParseHash parses 16 hex digits (either case) as written by FormatHash.
func ParseHash(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("%w: hash %q is not 16 hex digits", ErrFrame, s)
	}
	h, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: hash %q is not 16 hex digits", ErrFrame, s)
	}
	return h, nil
}

const hexDigits = "0123456789abcdef"

func appendHash(dst []byte, h uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(h>>uint(shift))&0xf])
	}
	return dst
}

// Chunker reads the blocks of one file. It reuses one buffer, so its memory
// does not grow with the file; it is not safe for concurrent use.
type Chunker struct {
	r         io.ReaderAt
	size      int64
	blockSize int
	buf       []byte
}

// New returns a Chunker over size bytes of r cut into blocks of blockSize.
func New(r io.ReaderAt, size int64, blockSize int) (*Chunker, error) {
	if err := CheckBlockSize(blockSize); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("chunker: negative size %d", size)
	}
	return &Chunker{r: r, size: size, blockSize: blockSize}, nil
}

// Count returns the number of blocks.
func (c *Chunker) Count() int64 { return Count(c.size, c.blockSize) }

// Block reads block i. The returned slice is valid until the next call.
func (c *Chunker) Block(i int64) (off int64, data []byte, err error) {
	if i < 0 || i >= c.Count() {
		return 0, nil, fmt.Errorf("chunker: block %d out of range [0,%d)", i, c.Count())
	}
	off, n := Span(c.size, c.blockSize, i)
	if cap(c.buf) < n {
		c.buf = make([]byte, c.blockSize)
	}
	data = c.buf[:n]
	if _, err := c.r.ReadAt(data, off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return off, nil, fmt.Errorf("chunker: read block at %d: %w", off, err)
	}
	return off, data, nil
}
