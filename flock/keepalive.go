package flock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/retry"
)

// wallCheck caps each wait of the keep-alive, so that after a suspend,
// during which the monotonic clock that timers run on stops while the
// wall clock goes on, a lock past its expiry is looked at soon.
const wallCheck = time.Second

// KeepAlive refreshes the lock in a background goroutine until the
// returned stop function is called, ctx is done, or the lock is lost. It
// refreshes when a third of the lifetime has passed since the last
// refresh, by the monotonic clock or by the wall clock, whichever says so
// first (the monotonic clock stops while a machine is suspended; the
// expiry written on the lock file is wall-clock time). Each refresh first
// checks that the lock is still ours, as [Lock.Refresh] does. A refresh
// that fails otherwise is retried with the backoff of [WithRetry] until the
// lifetime has passed.
//
// The returned context is derived from ctx. When the lock is lost it is
// cancelled with a cause that satisfies errors.Is(cause, [ErrLockLost])
// and says why: the lock file was removed or now names another holder,
// or refreshes kept failing until the lifetime was gone. If the Lock is
// released or closed while KeepAlive runs, the cause wraps [ErrNotLocked]
// or [ErrClosed]. Work done under the lock should use this context.
//
// stop ends the refreshing without releasing the lock, waits for the
// goroutine to return, cancels the context, and returns why refreshing
// ended: nil if stop or ctx ended it, otherwise the context's cause. It
// may be called more than once, from any goroutine, and must be called to
// free the goroutine. If the Lock does not hold the lock, KeepAlive starts
// no goroutine and returns a context already cancelled with the reason.
//
// Each call of KeepAlive has a goroutine of its own. KeepAlive is modelled
// on etcd's concurrency.Session; unlike its Done channel, [context.Cause]
// says why the lock is gone.
func (l *Lock) KeepAlive(ctx context.Context) (context.Context, func() error) {
	kctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	expiry := l.expiry
	var err error
	switch {
	case l.closed:
		err = l.err("keepalive", ErrClosed)
	case l.lost:
		err = l.lostCause(ErrLockLost, expiry)
	case !l.held:
		err = l.err("keepalive", ErrNotLocked)
	}
	l.mu.Unlock()
	if err != nil {
		cancel(err)
		return kctx, func() error { return err }
	}
	k := &keeper{l: l, ctx: kctx, cancel: cancel, stopc: make(chan struct{}), done: make(chan struct{})}
	go k.run(expiry)
	return kctx, k.stop
}

// keeper is one KeepAlive's goroutine and what it leaves behind.
type keeper struct {
	l      *Lock
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
	stopc  chan struct{} // closed by stop
	done   chan struct{} // closed when run returns
	err    error         // why run returned; nil if stopped; read after done
}

func (k *keeper) stop() error {
	k.once.Do(func() { close(k.stopc) })
	<-k.done
	k.cancel(nil)
	return k.err
}

// end records why the keep-alive ended and cancels its context with it.
func (k *keeper) end(err error) {
	k.err = err
	k.cancel(err)
}

// run refreshes the lock until told to stop or the lock is lost. expiry is
// a lower bound of the lock's current expiry by our clock.
func (k *keeper) run(expiry time.Time) {
	defer close(k.done)
	l := k.l
	clock := l.cfg.clock
	var (
		failures *retry.Schedule // backoff after failed refreshes; nil after success
		lastErr  error
		due      time.Time // when to refresh next
	)
	for {
		lifetime := l.Lifetime()
		now := clock.Now()
		if failures == nil {
			// A floor, so that an absurdly short lifetime cannot spin.
			due = expiry.Add(max(lifetime/3, time.Millisecond) - lifetime)
		}
		if wait := until(now, due); wait > 0 {
			t := clock.NewTimer(min(wait, wallCheck))
			select {
			case <-t.C():
				continue // look at both clocks again
			case <-k.stopc:
			case <-k.ctx.Done():
			case <-l.closing:
				k.end(l.err("keepalive", ErrClosed))
			}
			t.Stop()
			return
		}
		start := clock.Now()
		err := l.Refresh(0)
		switch {
		case err == nil:
			expiry, failures, lastErr = start.Add(lifetime), nil, nil
			continue
		case errors.Is(err, ErrLockLost):
			k.end(l.lostCause(err, expiry))
			return
		case errors.Is(err, ErrNotLocked), errors.Is(err, ErrClosed):
			k.end(err)
			return
		}
		// A passing fault (a network filesystem not answering): retry
		// until the lifetime is gone, when others may break the lock.
		lastErr = err
		now = clock.Now()
		if !now.Before(expiry) || !now.Round(0).Before(expiry.Round(0)) {
			k.end(l.err("keepalive", fmt.Errorf("%w: refreshes failed until the lifetime ran out at %v: %w",
				ErrLockLost, expiry.Round(0), lastErr)))
			return
		}
		if failures == nil {
			failures = l.cfg.policy.Schedule()
		}
		due = now.Add(failures.Next())
		if due.After(expiry) {
			due = expiry
		}
	}
}

// until returns how long from now to t by the monotonic clock or by the
// wall clock, whichever is less. The two differ once the machine has been
// suspended, or the wall clock set.
func until(now, t time.Time) time.Duration {
	return min(t.Sub(now), t.Round(0).Sub(now.Round(0)))
}

// lostCause says why a lock that a refresh found lost is gone, as far as
// the lock file still tells. expiry is when our lock expired or expires.
func (l *Lock) lostCause(err error, expiry time.Time) error {
	why := "it is no longer ours"
	s, ierr := l.inspect(l.path, "")
	switch {
	case gone(ierr):
		why = "the lock file was removed"
	case errors.Is(ierr, ErrNotRegular):
		why = fmt.Sprintf("the lock path now holds something else: %v", ierr)
	case ierr == nil:
		if d, ok := claim.Parse(s.contents, l.cfg.sep); ok {
			why = fmt.Sprintf("the lock file now names pid %d on %s", d.PID, d.Hostname)
		} else {
			why = fmt.Sprintf("the lock file now holds %.80q", s.contents)
		}
	}
	if now := l.cfg.clock.Now(); !expiry.IsZero() && (now.After(expiry) || now.Round(0).After(expiry.Round(0))) {
		why = fmt.Sprintf("broken after our lifetime ran out at %v: %s", expiry.Round(0), why)
	} else {
		why += ", before our lifetime ran out"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return l.err("keepalive", fmt.Errorf("%w: %s", err, why))
}
