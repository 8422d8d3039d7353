// Package chunker cuts a file into fixed-size blocks and carries each block
// across the wire as one Server-Sent Event, in both directions.
//
// A file of size S with block size B has ceil(S/B) blocks at offsets 0, B,
// 2B, …; the last one may be short and an empty file has none. Each block is
// hashed with xxh3-64 over its raw bytes, optionally compressed (zstd or
// gzip, kept only when the result is smaller), base64-encoded with the
// standard alphabet and padding, and framed as
//
//	id: <offset>
//	event: block
//	data: {"offset":<offset>,"length":<raw length>,"hash":"<16 hex>","encoding":"identity|zstd|gzip","data":"<base64>"}
//
// followed by a blank line. The event id is the block's byte offset, so a
// client that reconnects with Last-Event-ID names the last block it holds.
//
// The package also holds the other wire types of the protocol (event names,
// the meta and end payloads), so that the server and every client share one
// definition. docs/PROTOCOL.md describes the stream byte for byte.
package chunker
