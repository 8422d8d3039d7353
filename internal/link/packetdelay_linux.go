package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// PacketDelay holds every packet that the kernel puts on NFQUEUE queue
// for oneWay, then lets it go on. It stands in for netem's delay, which
// these kernels lack: the packets wait inside the kernel and TCP sees a
// long path (its round-trip time, window growth and loss recovery are
// those of the path), unlike a proxy that delays data. Only each packet's
// id comes to user space (copy mode "meta", GSO packets whole), and since
// every packet is held equally long they leave in the order they came,
// so one batch verdict releases all that are due. It returns when ctx is
// done, or with the error that stopped it.
func PacketDelay(parent context.Context, queue uint16, oneWay time.Duration) error {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      queue,
		MaxQueueLen:  1 << 16,
		Copymode:     nfqueue.NfQnlCopyMeta,
		Flags:        nfqueue.NfQaCfgFlagGSO,
		WriteTimeout: time.Second,
	})
	if err != nil {
		return fmt.Errorf("nfqueue %d: %w", queue, err)
	}
	defer nf.Close()
	// A queue's worth of packet notices must fit in the socket, or the
	// kernel drops the packets it cannot tell us about.
	if rc, err := nf.Con.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		})
	}
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		return fmt.Errorf("nfqueue %d: %w", queue, err)
	}

	var (
		mu      sync.Mutex
		pending []held
		wake    = make(chan struct{}, 1)
	)
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	err = nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		mu.Lock()
		pending = append(pending, held{id: *a.PacketID, due: time.Now().Add(oneWay)})
		first := len(pending) == 1
		mu.Unlock()
		if first {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		return 0
	}, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		if opErr, ok := errors.AsType[*netlink.OpError](err); ok && opErr.Timeout() {
			return 0
		}
		cancel(err)
		return 1
	})
	if err != nil {
		return fmt.Errorf("nfqueue %d: %w", queue, err)
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		mu.Lock()
		var due time.Time
		if len(pending) > 0 {
			due = pending[0].due
		}
		mu.Unlock()
		if due.IsZero() {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return stopped(parent, ctx)
			}
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return stopped(parent, ctx)
			}
		}
		// Release every packet due by now (and within 100 µs of it: one
		// verdict for a burst instead of one per packet).
		now := time.Now().Add(100 * time.Microsecond)
		mu.Lock()
		n := 0
		for n < len(pending) && !pending[n].due.After(now) {
			n++
		}
		last := pending[n-1].id
		pending = pending[n:]
		mu.Unlock()
		if err := nf.SetVerdictBatch(last, nfqueue.NfAccept); err != nil {
			return fmt.Errorf("nfqueue %d: verdict: %w", queue, err)
		}
	}
}

// held is a packet in the queue and when it is to go on.
type held struct {
	id  uint32
	due time.Time
}

// stopped is the error of a delay whose context ctx is done: nil when
// its parent was done (it was told to stop), else what stopped it.
func stopped(parent, ctx context.Context) error {
	if parent.Err() != nil {
		return nil
	}
	return context.Cause(ctx)
}
