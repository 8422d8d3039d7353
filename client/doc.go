// Package client downloads files from a Ferry server as verified blocks and
// survives cuts, stalls, corruption, crashes and files that change on the
// server, without ever handing over a corrupt or mixed file.
//
// Download is a state machine, one state per step, each naming what may
// follow:
//
//	stat       the destination and the partial file beside it
//	             → existing (destination there), manifest (partial there), fresh
//	existing   verify the destination against the manifest → done, or ErrExists
//	fresh      stream every block from 0 at once, no manifest needed → whole
//	manifest   fetch the manifest → reverify (or ErrRemoteChanged with Strict)
//	reverify   hash the blocks already on disk → missing
//	missing    stream only the missing block ranges (Parallel streams) → whole
//	whole      verify the whole file's xxh3-128 (and SHA-256 with Options.SHA256)
//	             → finish, or manifest to repair once
//	finish     fsync, rename into place, remove the state
//
// Data goes to <out>.part and a small state file, <out>.ferry-state, records
// the URL, etag, size and block size; it is replaced atomically. A block
// is written only after its xxh3-64 matched; a block that does not match is
// fetched again. Streams are reconnected with Last-Event-ID and the version
// pin after network errors, 5xx answers, idle timeouts and streams that end
// without their end event.
package client
