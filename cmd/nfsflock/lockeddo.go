package main

import (
	"context"
	"errors"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// lockedDo runs fn while holding the lock at path, with the contract of
// guard.Do: it acquires honouring ctx and opts, keeps the lifetime
// refreshed, cancels fn's context with a cause wrapping flock.ErrLockLost
// when the lock is lost, releases, and returns an error wrapping
// flock.ErrLockLost if it was lost.
//
// Temporary: it stands in for guard.Do until package guard builds, and
// goes then.
func lockedDo(ctx context.Context, path string, fn func(ctx context.Context) error, opts ...flock.Option) error {
	l, err := flock.New(path, opts...)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Acquire(ctx); err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(l.Lifetime() / 3)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if err := l.Refresh(0); errors.Is(err, flock.ErrLockLost) {
					cancel(err)
					return
				}
			}
		}
	}()
	ferr := fn(fctx)
	close(quit)
	<-done
	return errors.Join(ferr, l.Release())
}
