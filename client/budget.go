package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// failureBudget counts the attempts that failed in a row, for a stream or
// a manifest request, and decides whether another may follow and when.
type failureBudget struct {
	retries          int
	idle             time.Duration // for the message of two stalls
	url              string
	hint             *retryHint
	failures, stalls int
	retryAfter       time.Duration // the server's Retry-After of the last failure
	// delivering: the last attempt was receiving its stream when it was cut,
	// if only part of a block (a proxy cutting every few hundred KB). It
	// still counts as a failure, so a link that never lets a whole block
	// through is given up on, but the next attempt follows at once.
	delivering bool
}

func (d *download) newBudget() failureBudget {
	return failureBudget{retries: d.cfg.retries, idle: d.cfg.idle, url: d.url, hint: &d.hint}
}

// reset starts counting afresh: the last attempt made progress.
func (b *failureBudget) reset() { b.failures, b.stalls = 0, 0 }

// record takes a failed attempt. It returns nil if another may follow, or
// the error to give up with: a final status or local error, two stalls in a
// row, or more failures than the retries allow.
func (b *failureBudget) record(err error) error {
	b.retryAfter = 0
	var he *HTTPError
	switch {
	case errors.Is(err, errIdle), errors.Is(err, context.DeadlineExceeded):
		if b.stalls++; b.stalls >= 2 {
			return fmt.Errorf("%w: no data for %s twice in a row from %s", ErrTimeout, b.idle, b.url)
		}
	case errors.As(err, &he) && !retryableStatus(he.Status):
		return err
	case errors.Is(err, ErrDisk), errors.Is(err, ErrUsage), errors.Is(err, ErrRemoteChanged), errors.Is(err, errCertificate):
		return err
	default:
		if errors.As(err, &he) {
			b.retryAfter = he.retryAfter
		}
		if b.failures++; b.failures > b.retries {
			return giveUp(err, b.retries)
		}
	}
	return nil
}

// wait sleeps the backoff due after the failures so far, if any.
func (b *failureBudget) wait(ctx context.Context) error {
	if b.failures+b.stalls == 0 {
		return nil
	}
	return sleep(ctx, b.delay())
}

// delay returns the wait before the next attempt.
func (b *failureBudget) delay() time.Duration {
	n := b.failures + b.stalls
	if b.delivering && b.stalls == 0 {
		n = 1
	}
	return b.hint.backoff(n, b.retryAfter)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// giveUp turns the last failure into the error the caller sees.
func giveUp(err error, retries int) error {
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("%w: blocks kept failing verification after %d retries: %w", ErrIntegrity, retries, err)
	case errors.Is(err, ErrProtocol):
		return err
	}
	return fmt.Errorf("%w: giving up after %d retries: %w", ErrNetwork, retries, err)
}

// retryHint is the server's latest retry: field, shared by a download's
// streams.
type retryHint struct{ ms atomic.Int64 }

func (h *retryHint) set(d time.Duration) { h.ms.Store(d.Milliseconds()) }

// backoff returns the wait before the n-th attempt in a row that follows a
// failure. A connection that was delivering is retried at once (a little
// jitter apart); repeated failures back off exponentially from the server's
// retry: hint, up to 15 s, with jitter. A server's Retry-After wins.
func (h *retryHint) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, 60*time.Second)
	}
	if n <= 1 {
		return time.Duration(rand.Int64N(int64(100 * time.Millisecond)))
	}
	base := time.Duration(h.ms.Load()) * time.Millisecond
	if base <= 0 {
		base = time.Second
	}
	wait := min(base<<min(n-2, 10), 15*time.Second)
	return wait/2 + time.Duration(rand.Int64N(int64(wait)))
}

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}
