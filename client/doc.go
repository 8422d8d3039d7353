// Package client downloads files from a Ferry server as verified blocks and
// survives cuts, stalls, corruption, crashes and files that change on the
// server, without ever handing over a corrupt or mixed file.
//
// A Client holds what downloads share (transport, headers, token,
// timeouts, retries); Options hold one download's settings. A download is
// a machine of states run one at a time by a coordinator, each returning
// the state that follows:
//
//	stat        the destination and the partial file beside it
//	              → existing (destination there), resume (partial there), fresh
//	existing    verify the destination against the manifest → done, or ErrExists
//	fresh       open a stream from block 0 at once, no manifest needed → begin
//	begin       set up the partial file from the stream's meta event → fetch
//	resume      fetch the manifest → verifyDisk (or ErrRemoteChanged with Strict)
//	verifyDisk  hash the blocks already on disk → fetch
//	fetch       one pass: stream the missing blocks (Parallel streams)
//	              → whole, fetch (blocks that failed verification), recheck, changed
//	recheck     a block disagreed with the manifest: fetch it again → fetch
//	changed     the remote has another version: back off, fetch its manifest,
//	              keep the blocks that still match → fetch; at most Retries rounds
//	whole       verify the whole file's xxh3-128 (and SHA-256 with Options.SHA256)
//	              → finish, or arbitrate
//	arbitrate   fetch the manifest for digests that never came, or once to
//	              check every block on disk when the digests did not match
//	finish      fsync, rename into place, remove the state
//
// The coordinator owns the version (etag, size, block size, manifest, end
// digests); a pass's streams get a copy and report to the pass. A block that
// fails verification is dropped and the stream read on; the next pass
// fetches the dropped blocks with a Range of just those.
//
// Data goes to <out>.part and a small state file, <out>.ferry-state, records
// the URL, etag, size and block size; it is replaced atomically. A block
// is written only after its xxh3-64 matched; a block that does not match is
// fetched again. Streams are reconnected with Last-Event-ID and the version
// pin after network errors, 5xx answers, idle timeouts and streams that end
// without their end event.
package client
