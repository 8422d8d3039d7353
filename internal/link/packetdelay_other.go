//go:build !linux

package link

import (
	"context"
	"errors"
	"time"
)

// PacketDelay needs Linux's NFQUEUE.
func PacketDelay(ctx context.Context, queue uint16, oneWay time.Duration) error {
	return errors.New("a delayed link needs Linux (NFQUEUE)")
}
