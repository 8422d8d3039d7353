package client

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// version is the remote file a download is fetching: what the meta event or
// the manifest told of it. The coordinator owns it and hands copies to the
// streams; the manifest it points to is never modified.
type version struct {
	ETag      string
	Size      int64
	BlockSize int
	man       *manifest.Manifest // nil until fetched: only to check blocks on disk
	end       *chunker.End       // the whole-file digests of an end event
}

func versionOf(m *manifest.Manifest) version {
	return version{ETag: m.ETag, Size: m.Size, BlockSize: m.BlockSize, man: m}
}

func (v version) known() bool { return v.ETag != "" }

func (v version) blocks() int64 { return chunker.Count(v.Size, v.BlockSize) }

// manifestHash returns the manifest's hash of block i, if the manifest of
// this version is known.
func (v version) manifestHash(i int64) (uint64, bool) {
	if v.man == nil || v.man.ETag != v.ETag || i >= int64(len(v.man.Hashes)) {
		return 0, false
	}
	return uint64(v.man.Hashes[i]), true
}

// digests returns the whole-file digests to check the file against, if
// known: the manifest's, else an end event's.
func (v version) digests() (manifest.Digests, bool) {
	switch {
	case v.man != nil && v.man.ETag == v.ETag:
		return v.man.Digests(), true
	case v.end != nil:
		return manifest.Digests{XXH3128: v.end.XXH3128, SHA256: v.end.SHA256}, true
	}
	return manifest.Digests{}, false
}

func (v version) state(url string) state {
	return state{URL: url, ETag: v.ETag, Size: v.Size, BlockSize: v.BlockSize}
}

// versionRounds bounds how often a download follows the remote file to
// another version, and remembers the etags it saw to say why it stopped.
type versionRounds struct {
	n    int      // rounds so far
	seen []string // etags in the order seen, without repeats in a row
}

// saw records an etag the remote answered with.
func (r *versionRounds) saw(etag string) {
	if etag != "" && (len(r.seen) == 0 || r.seen[len(r.seen)-1] != etag) {
		r.seen = append(r.seen, etag)
	}
}

// next starts another round, or returns the error to stop with when the
// retries are spent.
func (r *versionRounds) next(retries int, url string) error {
	if r.n >= retries {
		return r.exhausted(url)
	}
	r.n++
	return nil
}

// exhausted tells a remote whose servers disagree (an etag came back after
// another) from one that kept changing.
func (r *versionRounds) exhausted(url string) error {
	for i, e := range r.seen {
		if slices.Contains(r.seen[:i], e) {
			other := r.seen[i-1]
			return fmt.Errorf("%w: the servers behind %s disagree about the file's version: etag %s, then %s (gave up after %d tries)",
				ErrRemoteChanged, url, e, other, r.n+1)
		}
	}
	return fmt.Errorf("%w: %s kept changing during the download: etags %s (gave up after %d tries)",
		ErrRemoteChanged, url, strings.Join(r.seen, ", "), r.n+1)
}
