package server

import (
	"context"
	"errors"
	"io"
	"time"
)

// An Origin holds the files a Server serves: a local folder (DirOrigin),
// any web server that honours Range (HTTPOrigin), or an S3 bucket
// (S3Origin). Paths are relative, slash-separated and already cleaned.
type Origin interface {
	// Open opens the current version of the file at rel. A file that does
	// not exist (or is not a regular file) is ErrNotFound; the others are
	// ErrOriginDenied and ErrOriginUnavailable where they apply.
	Open(ctx context.Context, rel string) (Object, error)
	// Walk calls fn for every file, in any order.
	Walk(ctx context.Context, fn func(ObjectInfo) error) error
	// Ready reports whether the origin can be read now.
	Ready(ctx context.Context) error
	// String names the origin for logs, without credentials.
	String() string
	Close() error
}

// An Object is one opened version of a file of an Origin. ReadAt fails
// with ErrOriginChanged once the origin holds another version.
type Object interface {
	io.ReaderAt
	Info() ObjectInfo
	// Unchanged reports whether the object is still the version opened.
	Unchanged() bool
	Close() error
}

// ObjectInfo describes one version of a file.
type ObjectInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
	// Version is the origin's validator of this version (its ETag, or its
	// Last-Modified where it has none); empty for a local file, whose
	// version is its size, times and inode.
	Version string
	inode   uint64 // local files only
	ctime   int64
}

// The errors of an Origin, as the handlers map them to statuses.
var (
	// ErrNotFound is a file the origin does not have: 404.
	ErrNotFound = errNotFound
	// ErrOriginDenied is a file the origin refuses to give Ferry: 403.
	ErrOriginDenied = errors.New("the origin denied access")
	// ErrOriginUnavailable is an origin that cannot be reached or answers
	// with a server error: 503 with Retry-After.
	ErrOriginUnavailable = errors.New("the origin is unavailable")
	// ErrOriginChanged is a read of a version the origin no longer holds.
	ErrOriginChanged = errors.New("the file changed at the origin")
)
