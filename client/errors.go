package client

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrExists reports a destination that exists, differs from the remote
	// file, and may not be overwritten (no Force).
	ErrExists = errors.New("client: destination exists")
	// ErrRemoteChanged reports a remote file that changed while Strict was set.
	ErrRemoteChanged = errors.New("client: remote file changed")
	// ErrIntegrity reports a file whose digest does not match the server's or
	// the expected checksum, or blocks that kept failing verification.
	ErrIntegrity = errors.New("client: integrity check failed")
	// ErrTimeout reports a stalled server (idle timeout) or an exceeded MaxTime.
	ErrTimeout = errors.New("client: timed out")
	// ErrNetwork reports network failures that outlasted the retries.
	ErrNetwork = errors.New("client: network error")
	// ErrProtocol reports a response that does not follow the Ferry protocol.
	ErrProtocol = errors.New("client: protocol error")
	// ErrDisk reports a local disk failure: no space, no permission, I/O error.
	ErrDisk = errors.New("client: local disk error")
	// ErrUsage reports invalid options or URL.
	ErrUsage = errors.New("client: invalid request")
)

// HTTPError is a final HTTP error status (a 4xx other than 412, or a 5xx
// that outlasted the retries). It wraps ErrProtocol.
type HTTPError struct {
	URL     string
	Status  int
	Message string // the server's message, if it sent one

	retryAfter time.Duration
	hashed     int64 // with a 503 for a manifest being hashed: its bytes hashed so far; else -1
}

func (e *HTTPError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("client: %s: HTTP %d: %s", e.URL, e.Status, e.Message)
	}
	return fmt.Sprintf("client: %s: HTTP %d", e.URL, e.Status)
}

// Unwrap makes errors.Is(err, ErrProtocol) true for every HTTPError.
func (e *HTTPError) Unwrap() error { return ErrProtocol }

// InterruptedError reports a download stopped by its context (a signal,
// say) before it was complete. Partial names the partial file kept for the
// next call to resume, if there is one.
type InterruptedError struct {
	Partial string
	Cause   error
}

func (e *InterruptedError) Error() string { return "client: interrupted: " + e.Cause.Error() }

func (e *InterruptedError) Unwrap() error { return e.Cause }
