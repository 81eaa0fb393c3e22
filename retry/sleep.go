package retry

import (
	"context"
	"time"
)

// Sleep waits for d on clock, or until ctx is done or wake delivers, whichever
// comes first. It returns context.Cause(ctx) if ctx ended the wait, and nil
// otherwise. A nil wake channel never delivers.
func Sleep(ctx context.Context, clock Clock, d time.Duration, wake <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C():
	case <-wake:
	}
	return nil
}
