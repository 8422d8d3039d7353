package chunker

import "errors"

var (
	// ErrBlockSize reports a block size outside [MinBlockSize, MaxBlockSize].
	ErrBlockSize = errors.New("chunker: block size out of range")
	// ErrFrame reports a block event whose JSON payload is malformed or lacks a field.
	ErrFrame = errors.New("chunker: malformed block event")
	// ErrEncoding reports a block encoded with a codec this package does not know.
	ErrEncoding = errors.New("chunker: unknown block encoding")
	// ErrCorrupt reports a block whose payload does not decode to its declared length.
	ErrCorrupt = errors.New("chunker: corrupt block payload")
	// ErrChecksum reports a block whose decoded bytes do not match its xxh3-64 hash.
	ErrChecksum = errors.New("chunker: block checksum mismatch")
)
