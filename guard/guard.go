// Package guard runs a function while holding a lock file: [WithLock] takes
// the lock, keeps it refreshed while the function runs, cancels the
// function's context if the lock is lost, and releases the lock however the
// function ends. Inside the function, [Token] gives the fencing token of
// that lock, never one of an outer WithLock's. It is the part of nfsflock
// most programs need; the [flock.Lock] underneath is for code that cannot
// be shaped as a callback.
package guard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/nfsflock/nfsflock/flock"
)

// WithLock takes the lock file at path, calls fn, releases the lock and
// returns what fn returned.
//
// The lock is taken as by [flock.New] with opts and [flock.Lock.Acquire]
// with ctx: it waits while another process holds it, until ctx is done or
// the timeout of [flock.WithTimeout] has passed, and then returns the
// error of Acquire without calling fn. If ctx is done by the time the
// lock is had, fn is not called either: the lock is released and the
// error satisfies errors.Is(err, ctx.Err()).
//
// Until fn returns, the lock is refreshed in the background as by
// [flock.Lock.KeepAlive], even once ctx is cancelled: a function that
// winds down after its context is cancelled (a graceful shutdown) still
// holds the lock while it does. fn's context carries ctx's values and
// deadline, and is cancelled when ctx is, with ctx's cause, or when the
// lock is lost: then context.Cause(ctx) in fn satisfies errors.Is(cause,
// [flock.ErrLockLost]) and says why, and fn should stop touching what the
// lock protects. WithLock then returns fn's result and fn's error joined
// with that cause, so that errors.Is(err, flock.ErrLockLost) is true. It is
// true too if the lock is lost after ctx was cancelled (fn's context says
// only ctx's cause then), or turns out to be lost only when it is released
// after fn returns. Errors releasing the lock are joined likewise.
//
// The lock is released when fn returns, and when fn panics, after which
// the panic goes on. No goroutine outlives the call.
// Inside fn, [Token] reports the fencing token if opts include
// [flock.WithFencing], and 0 and false otherwise, even inside another
// WithLock's fn.
//
// Every call uses a Lock of its own, so concurrent calls for one path, in
// one process or in many, run fn one at a time; a call for a path inside
// the fn of another call for the same path waits for itself until its ctx
// ends or the timeout of [flock.WithTimeout] passes.
func WithLock[T any](ctx context.Context, path string, fn func(ctx context.Context) (T, error), opts ...flock.Option) (T, error) {
	var zero T
	if fn == nil {
		return zero, &fs.PathError{Op: "guard", Path: path, Err: fmt.Errorf("%w: nil fn", flock.ErrInvalid)}
	}
	l, err := flock.New(path, opts...)
	if err != nil {
		return zero, err
	}
	defer l.Close()
	if err := l.Acquire(ctx); err != nil {
		return zero, err
	}
	if ctx.Err() != nil {
		// Acquire makes one attempt even when ctx is done; its owner
		// wants nothing run.
		return zero, join(&fs.PathError{Op: "acquire", Path: l.Path(), Err: ctxErr(ctx)}, l.Release())
	}

	// Refreshed until fn returns, whatever becomes of ctx. fn's context
	// is ctx's, cancelled also when the lock is lost.
	kctx, stop := l.KeepAlive(context.WithoutCancel(ctx))
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unwatch := cancelOnLoss(kctx, cancel)
	// Stored even without fencing, so that it hides the token of any
	// WithLock that ctx comes from: that token is another lock's.
	token, ok := l.Token()
	fctx = context.WithValue(fctx, fencingKey{}, fencing{token, ok})
	returned := false
	defer func() {
		if !returned {
			// fn panicked, or called runtime.Goexit: release, and let the
			// panic go on.
			unwatch()
			stop()
			l.Release()
		}
	}()
	result, fnErr := fn(fctx)
	returned = true

	unwatch()
	lost := stop()
	relErr := l.Release()
	switch {
	case lost != nil && (errors.Is(relErr, flock.ErrLockLost) || errors.Is(relErr, flock.ErrNotLocked)):
		relErr = nil // the keep-alive said so already, and why
	case lost == nil && errors.Is(relErr, flock.ErrLockLost):
		lost, relErr = relErr, nil
	}
	return result, join(fnErr, lost, relErr, l.Close())
}

// cancelOnLoss cancels fn's context with the cause of kctx, the
// keep-alive's, once the lock is lost, in a goroutine that the returned
// function ends and waits for.
func cancelOnLoss(kctx context.Context, cancel context.CancelCauseFunc) (unwatch func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-kctx.Done():
			cancel(context.Cause(kctx))
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// join is errors.Join, except that a single error comes back as itself,
// so that fn's own error reaches the caller unwrapped when nothing else
// went wrong.
func join(errs ...error) error {
	var only error
	n := 0
	for _, err := range errs {
		if err != nil {
			only = err
			n++
		}
	}
	if n == 1 {
		return only
	}
	return errors.Join(errs...)
}

// Do is [WithLock] for a function that returns only an error.
func Do(ctx context.Context, path string, fn func(ctx context.Context) error, opts ...flock.Option) error {
	if fn == nil {
		return &fs.PathError{Op: "guard", Path: path, Err: fmt.Errorf("%w: nil fn", flock.ErrInvalid)}
	}
	_, err := WithLock(ctx, path, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	}, opts...)
	return err
}

// fencingKey is the context key under which WithLock stores the fencing
// of its lock.
type fencingKey struct{}

// fencing is what [Token] reports.
type fencing struct {
	token uint64
	ok    bool
}

// Token returns the fencing token of the lock that WithLock or Do holds
// while it runs the function that was given ctx (or a context derived from
// it), and true; or 0 and false if there is none, because the lock was
// taken without [flock.WithFencing] or ctx does not come from WithLock.
// When calls nest, only the innermost counts: inside an inner WithLock
// without fencing, Token reports 0 and false, not the outer lock's token,
// which a store protected by the inner lock must not be sent.
// Pass the token to the store that the lock protects with every write;
// see [flock.Lock.Token].
func Token(ctx context.Context) (uint64, bool) {
	f, _ := ctx.Value(fencingKey{}).(fencing)
	return f.token, f.ok
}

// ctxErr is ctx's error, and its cause if that says more.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}
