// Package manifest describes one version of a served file: its size, block
// size, the xxh3-64 hash of every block and the xxh3-128 and SHA-256 digests
// of the whole file.
//
// A version is named by its etag, which is derived from the file's size,
// modification time in nanoseconds and the block size alone, so it is known
// at once without reading the file, stable across restarts, and the same on
// every replica that serves an identical copy with its modification time
// kept. The hashes take a full read of the file; a Cache computes them once
// per version, shares one computation between concurrent callers and keeps
// the result on disk across restarts.
//
// The JSON form, served at /manifest/<path>:
//
//	{"version":1,"path":"a/b.bin","size":300000,"block_size":262144,"blocks":2,
//	 "mtime":"2026-11-23T10:00:00.123456789Z","etag":"493e0-187a…-40000",
//	 "hashes":["1f0c…","9a3b…"],"xxh3_128":"<32 hex>","sha256":"<64 hex>"}
//
// xxh3_128 is written high 64 bits first, the canonical form.
package manifest
