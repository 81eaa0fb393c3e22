//go:build unix

package guard_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/guard"
)

// TestMisuseLostAfterCallerCancel: the lock is lost after the caller's
// ctx was cancelled; fn ignores its context and returns nil. The error
// must still satisfy errors.Is(err, flock.ErrLockLost), as documented.
func TestMisuseLostAfterCallerCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := lockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := guard.WithLock(ctx, path, func(fctx context.Context) (int, error) {
		cancel()
		<-fctx.Done()
		if err := os.Remove(path); err != nil {
			t.Error(err)
		}
		time.Sleep(600 * time.Millisecond) // several keep-alive rounds
		if c := context.Cause(fctx); !errors.Is(c, context.Canceled) {
			t.Errorf("fn's cause = %v, want the caller's", c)
		}
		return 7, nil
	}, flock.WithLifetime(300*time.Millisecond))
	if n != 7 {
		t.Errorf("result = %d, want fn's 7", n)
	}
	if !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("err = %v, want ErrLockLost", err)
	}
	checkReleased(t, path)
}

// TestMisuseLostIgnored: fn ignores the loss and returns a result and
// nil; WithLock returns that result with ErrLockLost, once.
func TestMisuseLostIgnored(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := lockPath(t)
	n, err := guard.WithLock(context.Background(), path, func(fctx context.Context) (int, error) {
		os.Remove(path)
		select {
		case <-fctx.Done():
		case <-time.After(5 * time.Second):
			t.Error("fn's context not cancelled 5 s after the lock file was removed")
		}
		if c := context.Cause(fctx); !errors.Is(c, flock.ErrLockLost) {
			t.Errorf("cause = %v, want ErrLockLost", c)
		}
		return 3, nil
	}, flock.WithLifetime(300*time.Millisecond))
	if n != 3 || !errors.Is(err, flock.ErrLockLost) || errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("WithLock = %d, %v; want 3 and ErrLockLost only", n, err)
	}
	t.Logf("err: %v", err)
	checkReleased(t, path)
}

// TestMisuseGoexit: fn calling runtime.Goexit (t.FailNow in a helper
// goroutine's test code) still releases the lock.
func TestMisuseGoexit(t *testing.T) {
	path := lockPath(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		guard.Do(context.Background(), path, func(ctx context.Context) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-done
	checkReleased(t, path)
}

// TestMisusePanicValueAndNoLeak: the same panic value comes out, the
// lock is released, and no goroutine is left.
func TestMisusePanicValueAndNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := lockPath(t)
	boom := errors.New("boom")
	var got any
	func() {
		defer func() { got = recover() }()
		guard.WithLock(context.Background(), path, func(ctx context.Context) (int, error) {
			panic(boom)
		})
	}()
	if got != boom {
		t.Errorf("recovered %v, want the panic value", got)
	}
	checkReleased(t, path)
}

// TestMisuseNestedSamePath: an inner call for the same path times out
// with ErrTimeout; the outer's fn and lock go on.
func TestMisuseNestedSamePath(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := lockPath(t)
	err := guard.Do(context.Background(), path, func(ctx context.Context) error {
		inner := guard.Do(ctx, path, func(context.Context) error {
			t.Error("inner fn ran while the outer holds the lock")
			return nil
		}, flock.WithTimeout(100*time.Millisecond))
		if !errors.Is(inner, flock.ErrTimeout) {
			t.Errorf("inner = %v, want ErrTimeout", inner)
		}
		return ctx.Err()
	})
	if err != nil {
		t.Errorf("outer = %v", err)
	}
	checkReleased(t, path)
}

// TestMisuseResultOnError: fn's result comes back with fn's error,
// unwrapped.
func TestMisuseResultOnError(t *testing.T) {
	path := lockPath(t)
	bad := errors.New("bad")
	n, err := guard.WithLock(context.Background(), path, func(ctx context.Context) (int, error) {
		return 42, bad
	})
	if n != 42 || err != bad {
		t.Errorf("WithLock = %d, %v; want 42, bad itself", n, err)
	}
	checkReleased(t, path)
}

// TestMisuseCancelledBeforeAcquire: a cancelled ctx on a free lock:
// fn not run, ctx's error, nothing left.
func TestMisuseCancelledBeforeAcquire(t *testing.T) {
	path := lockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := guard.Do(ctx, path, func(context.Context) error {
		t.Error("fn ran with a cancelled context")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want Canceled", err)
	}
	checkReleased(t, path)
	if err := guard.Do(context.Background(), path, nil); !errors.Is(err, flock.ErrInvalid) {
		t.Errorf("nil fn = %v, want ErrInvalid", err)
	}
}
