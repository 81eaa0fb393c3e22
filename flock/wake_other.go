//go:build !linux

package flock

import (
	"context"
	"time"

	"github.com/nfsflock/nfsflock/retry"
)

// watch would wake a waiter when the lock file is removed. Only Linux has
// one (wake_linux.go); elsewhere a waiter polls.
type watch struct{}

// watch returns nil: the wait polls, with no retry.
func (l *Lock) watch() (w *watch, retry bool) { return nil, false }

// unwatched is never called here: watch asks for no retry.
func unwatched(d time.Duration) time.Duration { return d }

// sleep is [retry.Sleep]; a Lock calls it only on a watch that is not
// nil, which this system never has.
func (w *watch) sleep(ctx context.Context, clock retry.Clock, d time.Duration, wake <-chan struct{}) error {
	return retry.Sleep(ctx, clock, d, wake)
}

// stop does nothing.
func (w *watch) stop() {}
