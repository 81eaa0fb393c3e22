package flock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/retry"
)

// wallCheck caps each wait of the keep-alive, so that after a suspend,
// during which the monotonic clock that timers run on stops while the
// run clock goes on, a lock past its expiry is looked at soon.
const wallCheck = time.Second

// KeepAlive refreshes the lock in a background goroutine, at a third of
// the lifetime by a clock that no one sets and that goes on while the
// machine sleeps (a wall clock set back delays no refresh), until the
// returned stop function is called, ctx is done, or the lock is lost (see
// Leases in the package doc). A failed refresh is retried with the
// backoff of [WithRetry] until the lifetime has passed.
//
// The returned context, derived from ctx, is cancelled when the lock is
// lost, with a cause that matches [ErrLockLost] and says why; do the work
// under the lock with it. That includes a lease that ran out while a
// refresh was stuck in a filesystem call (a network filesystem that
// stopped answering), or before the machine woke from a suspend: the
// context is cancelled then, by the Lock's own clock, although the
// goroutine waits for the call to return. stop ends the refreshing
// without releasing the lock, waits for the goroutine, and returns that
// cause, or nil if stop or ctx ended it. It may be called more than once,
// from any goroutine, and must be called. Release and Close end the refreshing with a cause
// that wraps [ErrNotLocked] or [ErrClosed]. If the Lock does not hold the
// lock, KeepAlive starts nothing and returns a context already cancelled
// with the reason.
func (l *Lock) KeepAlive(ctx context.Context) (context.Context, func() error) {
	kctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	a := l.acq
	var err error
	switch {
	case l.closed:
		err = l.err("keepalive", ErrClosed)
	case l.lost:
		err = l.lostCause(ErrLockLost, a)
	case !l.held:
		err = l.err("keepalive", ErrNotLocked)
	}
	l.mu.Unlock()
	if err != nil {
		cancel(err)
		return kctx, func() error { return err }
	}
	k := &keeper{l: l, a: a, ctx: kctx, cancel: cancel, stopc: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	return kctx, k.stop
}

// acquisition is one holding of the lock: the expiry last written for it,
// by Refresh or a keeper alike, and its end, which its keepers wait for.
type acquisition struct {
	claim   string    // the claim's name, which the lock file holds
	file    fsys.Info // the claim file's identity as created, where the filesystem keeps identity; else Ino 0
	mu      sync.Mutex
	written reading       // when the expiry was last written
	expiry  time.Time     // as the filesystem stored it, maybe cut to seconds
	lease   time.Duration // the lease it gave then: the lifetime, or less where it was cut
	changed chan struct{} // closed, and replaced, when expiry changes
	done    chan struct{} // closed when the acquisition ends
	cause   error         // why it ended
	early   bool          // ended by endEarly, which the Lock has yet to take up
}

func newAcquisition(claim string, file fsys.Info) *acquisition {
	return &acquisition{claim: claim, file: file, changed: make(chan struct{}), done: make(chan struct{})}
}

func (a *acquisition) setExpiry(written reading, expiry time.Time, lease time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.written, a.expiry, a.lease = written, expiry, lease
	close(a.changed)
	a.changed = make(chan struct{})
}

// state returns the last expiry written, when the next refresh is due (a
// third of the lease it gave after it was written, by the run clock), and
// the channels that say it changed or the acquisition ended.
func (a *acquisition) state() (expiry time.Time, due time.Duration, changed, done <-chan struct{}) {
	if a == nil {
		return time.Time{}, 0, nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// A floor, so that an absurdly short lifetime cannot spin.
	return a.expiry, a.written.run + max(a.lease/3, time.Millisecond), a.changed, a.done
}

// endEarly ends the acquisition with cause, a loss found without the
// Lock's mutex (keeper.refresh), which the Lock then takes up
// (noteEarlyLoss); later calls, and end, do nothing.
func (a *acquisition) endEarly(cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.done:
	default:
		a.cause, a.early = cause, true
		close(a.done)
	}
}

// lostEarly returns the cause of an end by endEarly, or nil.
func (a *acquisition) lostEarly() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.early {
		return a.cause
	}
	return nil
}

// end ends the acquisition with cause; later calls do nothing.
func (a *acquisition) end(cause error) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.done:
	default:
		a.cause = cause
		close(a.done)
	}
}

// keeper is one KeepAlive's goroutine and what it leaves behind.
type keeper struct {
	l      *Lock
	a      *acquisition // the acquisition it keeps, and no later one
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
	stopc  chan struct{} // closed by stop
	done   chan struct{} // closed when run returns
	err    error         // why run returned; nil if stopped; read after done
	early  error         // the loss reported while a refresh was stuck (refresh)
}

func (k *keeper) stop() error {
	k.once.Do(func() { close(k.stopc) })
	<-k.done
	k.cancel(nil)
	return k.err
}

// end records why the keep-alive ended and cancels its context with it;
// a loss reported while a refresh was stuck stays the reason.
func (k *keeper) end(err error) {
	if k.early != nil {
		err = k.early
	}
	k.err = err
	k.cancel(err)
}

// run refreshes the lock until told to stop, the acquisition ends, or the
// lock is lost. It schedules from the expiry written last, whoever wrote
// it: a Refresh with a shorter lifetime brings the next refresh forward.
// It counts by the run clock (timebase.go), which a wall clock set back
// does not hold back; its timers run on Go's monotonic clock, which stops
// while the machine sleeps, so each waits wallCheck at most.
func (k *keeper) run() {
	defer close(k.done)
	l := k.l
	clock := l.cfg.clock
	var (
		failures *retry.Schedule // backoff after failed refreshes; nil after success
		lastErr  error
		retryAt  time.Duration // by the run clock
	)
	for {
		expiry, due, changed, ended := k.a.state()
		if failures != nil {
			due = retryAt
			if l.leaseOver(expiry) {
				// A refresh now would only find the lease over.
				k.end(l.err("keepalive", fmt.Errorf("%w: refreshes failed until the lifetime ran out at %v: %w",
					ErrLockLost, expiry, lastErr)))
				return
			}
		}
		// A lease over before the refresh is due (a suspend that a run
		// clock of Go's monotonic reading did not count) is looked at
		// now: the refresh reports it lost.
		if wait := due - l.read().run; wait > 0 && !l.leaseOver(expiry) {
			t := clock.NewTimer(min(wait, wallCheck))
			select {
			case <-t.C():
				continue // look at the run clock again
			case <-changed:
				t.Stop()
				failures = nil
				continue
			case <-ended:
				k.end(k.endCause())
			case <-k.stopc:
			case <-k.ctx.Done():
			case <-l.closing:
				k.end(l.err("keepalive", ErrClosed))
			}
			t.Stop()
			return
		}
		err := k.refresh()
		if k.early != nil {
			// The context said the lock was lost, whatever the refresh
			// found when it returned (a wall clock stepped back since
			// may let it succeed): the Lock agrees, and gives it up.
			l.mu.Lock()
			if !l.closed && l.acq == k.a {
				l.noteEarlyLoss()
			}
			l.mu.Unlock()
			k.end(k.early)
			return
		}
		switch {
		case err == nil:
			failures, lastErr = nil, nil
			continue
		case errors.Is(err, ErrLockLost):
			k.end(l.lostCause(err, k.a))
			return
		case errors.Is(err, ErrNotLocked), errors.Is(err, ErrClosed):
			k.end(err)
			return
		}
		// A passing fault (a network filesystem not answering): retry
		// until the lifetime is gone, when others may break the lock.
		lastErr = err
		now := l.read().run
		if failures == nil {
			failures = l.cfg.policy.Schedule()
		}
		retryAt = min(now+failures.Next(), now+l.leaseLeft(expiry))
	}
}

// refresh refreshes the lock, in a goroutine of its own: a refresh may be
// stuck in a filesystem call (a hard-mounted NFS server that went away)
// for longer than the lease, and once the lease is over by the Lock's own
// clocks, others may break the lock, so the keeper's context is cancelled
// then, without waiting for the call or looking at the lock file. The
// keeper goes on waiting for the refresh, whose error then ends it.
func (k *keeper) refresh() error {
	l := k.l
	if expiry, _, _, _ := k.a.state(); l.leaseOver(expiry) {
		// Over already (a suspend): said at once, since the refresh
		// may wait for the mutex or a filesystem that hangs; then the
		// refresh, in this goroutine, gives the lock up.
		k.reportEarly(l.err("keepalive", fmt.Errorf("%w: our lifetime ran out at %v", ErrLockLost, expiry)))
		return l.refreshFor(k.a)
	}
	res := make(chan error, 1)
	go func() { res <- l.refreshFor(k.a) }()
	for {
		expiry, _, _, _ := k.a.state()
		wait := wallCheck
		if k.early == nil {
			wait = max(min(wait, l.leaseLeft(expiry)), time.Millisecond)
		}
		// A timer of Go's own, not the Lock's clock's: it fires only
		// when a refresh takes long, and the lease is judged by the
		// Lock's clocks all the same.
		t := time.NewTimer(wait)
		select {
		case err := <-res:
			t.Stop()
			return err
		case <-t.C:
		}
		if expiry, _, _, _ := k.a.state(); k.early == nil && l.leaseOver(expiry) {
			k.reportEarly(l.err("keepalive", fmt.Errorf("%w: our lifetime ran out at %v, while a refresh had not returned", ErrLockLost, expiry)))
		}
	}
}

// reportEarly reports the lock lost, by the Lock's own clocks, before the
// refresh under way has returned: it cancels the context with cause and
// ends the acquisition, without the Lock's mutex, which the refresh or
// another call may hold through a filesystem that hangs; a Release
// waiting behind them finds the acquisition ended so (noteEarlyLoss).
func (k *keeper) reportEarly(cause error) {
	k.early = cause
	// The acquisition first: whoever the cancel tells may at once let
	// the stuck call go on, which must find the loss.
	k.a.endEarly(cause)
	k.cancel(cause)
}

// endCause is why the keeper's acquisition ended, for its context.
func (k *keeper) endCause() error {
	k.a.mu.Lock()
	cause := k.a.cause
	k.a.mu.Unlock()
	if errors.Is(cause, ErrLockLost) {
		return k.l.lostCause(cause, k.a)
	}
	return k.l.err("keepalive", cause)
}

// refreshFor refreshes the lock if a is still the current acquisition.
func (l *Lock) refreshFor(a *acquisition) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return l.err("refresh", ErrClosed)
	case l.acq != a:
		return l.err("refresh", ErrNotLocked)
	}
	return l.err("refresh", l.refreshLocked())
}

// lostCause says why the lock of acquisition a is gone, as far as the
// lock file still tells, for the keep-alive.
func (l *Lock) lostCause(err error, a *acquisition) error {
	return l.err("keepalive", l.lostWhy(err, a))
}

// lostWhy is err, which matches ErrLockLost, with why the lock of
// acquisition a is gone, as far as the lock file still tells.
func (l *Lock) lostWhy(err error, a *acquisition) error {
	expiry, _, _, _ := a.state()
	why := "it is no longer ours"
	s, ierr := l.inspect(l.path)
	switch {
	case gone(ierr):
		why = "the lock file was removed"
	case errors.Is(ierr, ErrNotRegular) && errors.Is(err, ErrNotRegular):
		why = "the lock path now holds something else" // err says what
	case errors.Is(ierr, ErrNotRegular):
		why = fmt.Sprintf("the lock path now holds something else: %v", ierr)
	case ierr == nil && a != nil && s.names(a.claim) && a.file.Ino != 0 && !s.info.SameFile(a.file):
		why = "the lock file names our claim, but is another file, put in its place"
	case ierr == nil && a != nil && s.names(a.claim):
		why = "the lock file is still ours, but others may break it at any moment"
	case ierr == nil:
		if d, ok := claim.Parse(s.contents, l.cfg.sep); ok {
			why = fmt.Sprintf("the lock file now names pid %d on %q", d.PID, d.Hostname)
		} else {
			why = fmt.Sprintf("the lock file now holds %d bytes that name no claim", len(s.contents))
		}
	}
	if !expiry.IsZero() && l.leaseOver(expiry) {
		why = fmt.Sprintf("our lifetime ran out at %v: %s", expiry, why)
	} else {
		why += ", before our lifetime ran out"
	}
	if pe, ok := err.(*fs.PathError); ok {
		err = pe.Err // the caller names the operation and path
	}
	if errors.Is(err, errLeaseOver) {
		err = ErrLockLost
	}
	return fmt.Errorf("%w: %s", err, why)
}
