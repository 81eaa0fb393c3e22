//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/retry"
)

// stepClock is a clock that moves only when told. Each timer it makes is
// announced on made, so a test knows when the keep-alive waits, and for
// how long it asked to.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*stepTimer]struct{}
	made   chan time.Duration
}

type stepTimer struct {
	clock *stepClock
	at    time.Time
	c     chan time.Time
}

func newStepClock() *stepClock {
	return &stepClock{
		now:    time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		timers: map[*stepTimer]struct{}{},
		made:   make(chan time.Duration, 100),
	}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) NewTimer(d time.Duration) retry.Timer {
	c.mu.Lock()
	t := &stepTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
	} else {
		c.timers[t] = struct{}{}
	}
	c.mu.Unlock()
	c.made <- d
	return t
}

func (t *stepTimer) C() <-chan time.Time { return t.c }

func (t *stepTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, ok := t.clock.timers[t]
	delete(t.clock.timers, t)
	return ok
}

// Advance moves the clock forward, firing the timers that come due.
func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			delete(c.timers, t)
		}
	}
}

// Jump moves the wall clock forward without firing timers, as a suspend
// does to a process whose timers run on the monotonic clock.
func (c *stepClock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// nextTimer waits for the keep-alive to start waiting, or for ctx to end.
func (c *stepClock) nextTimer(t *testing.T, ctx context.Context) (time.Duration, bool) {
	t.Helper()
	select {
	case d := <-c.made:
		return d, true
	case <-ctx.Done():
		return 0, false
	case <-time.After(10 * time.Second):
		t.Fatal("the keep-alive neither waited nor ended")
		return 0, false
	}
}

// keptLock returns a held Lock on a step clock with a 3 s lifetime, so
// that the keep-alive refreshes every second.
func keptLock(t *testing.T, opts ...Option) (*Lock, *stepClock) {
	t.Helper()
	clock := newStepClock()
	path := filepath.Join(t.TempDir(), "app.lck")
	l, err := New(path, append([]Option{WithClock(clock), withoutTimeBase(), WithLifetime(3 * time.Second), WithRetry(retry.Constant(100 * time.Millisecond))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	return l, clock
}

func TestKeepAliveRefreshes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, clock := keptLock(t)
	start := clock.Now()
	ctx, stop := l.KeepAlive(context.Background())
	d, _ := clock.nextTimer(t, ctx)
	for i := 1; i <= 3; i++ {
		if d != time.Second {
			t.Fatalf("keep-alive waits %v; want a third of the lifetime, 1s", d)
		}
		clock.Advance(d)
		d, _ = clock.nextTimer(t, ctx) // refreshed, and waiting again
		want := start.Add(time.Duration(i)*time.Second + 3*time.Second)
		if got, err := l.Expiration(); err != nil || !got.Equal(want) {
			t.Errorf("after %d refreshes, Expiration() = %v, %v; want %v", i, got, err, want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("stop() = %v; want nil", err)
	}
	if ctx.Err() == nil {
		t.Error("stop did not cancel the keep-alive's context")
	}
	if err := stop(); err != nil {
		t.Errorf("second stop() = %v; want nil", err)
	}
	// Stopping does not release.
	if ok, err := l.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() after stop = %v, %v; want true", ok, err)
	}
}

func TestKeepAliveLost(t *testing.T) {
	tests := []struct {
		name    string
		lose    func(t *testing.T, path string)
		expired bool // the clock passes our expiry before the refresh
		want    string
	}{
		{"removed", func(t *testing.T, path string) { os.Remove(path) }, false, "the lock file was removed, before our lifetime ran out"},
		{"replaced", replaceLock, false, "now names pid 99999999 on \"elsewhere\""},
		// A copy of our lock file, a new file under its name (helper 54).
		{"forged", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".copy", b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".copy", path); err != nil {
				t.Fatal(err)
			}
		}, false, "names our claim, but is another file, put in its place, before our lifetime ran out"},
		{"broken", replaceLock, true, "our lifetime ran out at"},
		{"directory", func(t *testing.T, path string) {
			os.Remove(path)
			os.Mkdir(path, 0o755)
		}, false, "the lock path now holds something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			l, clock := keptLock(t)
			ctx, stop := l.KeepAlive(context.Background())
			d, _ := clock.nextTimer(t, ctx)
			tt.lose(t, l.Path())
			if tt.expired {
				clock.Jump(time.Hour)
			}
			clock.Advance(d)
			<-ctx.Done()
			cause := context.Cause(ctx)
			t.Logf("cause: %v", cause)
			if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), tt.want) {
				t.Errorf("context.Cause = %v; want ErrLockLost saying %q", cause, tt.want)
			}
			if err := stop(); err != cause {
				t.Errorf("stop() = %v; want the cause %v", err, cause)
			}
			if err := l.Release(); !errors.Is(err, ErrLockLost) || errors.Is(err, ErrNotLocked) {
				t.Errorf("Release() = %v; want ErrLockLost, not ErrNotLocked", err)
			}
		})
	}
}

// replaceLock puts another holder's claim where the lock file is.
func replaceLock(t *testing.T, path string) {
	t.Helper()
	other := path + "|elsewhere|99999999|1"
	if err := os.WriteFile(other, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
}

// TestKeepAliveFailingRefreshes: refreshes that fail with an I/O error are
// retried until the lifetime has run out; then the lock counts as lost.
func TestKeepAliveFailingRefreshes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var failing sync.Mutex // held while opens of the lock fail
	var fail bool
	f := &fsystest.Faulty{FS: fsys.OS, OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		failing.Lock()
		defer failing.Unlock()
		if fail && !strings.Contains(filepath.Base(p), "|") {
			return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EIO}
		}
		return next(p)
	}}
	l, clock := keptLock(t, withFS(f))
	start := clock.Now()
	ctx, stop := l.KeepAlive(context.Background())
	failing.Lock()
	fail = true
	failing.Unlock()
	retries := 0
	for {
		d, ok := clock.nextTimer(t, ctx)
		if !ok {
			break
		}
		if d == 100*time.Millisecond {
			retries++
		}
		clock.Advance(d)
	}
	cause := context.Cause(ctx)
	t.Logf("cause: %v", cause)
	if !errors.Is(cause, ErrLockLost) || !errors.Is(cause, syscall.EIO) || !strings.Contains(cause.Error(), "refreshes failed") {
		t.Errorf("context.Cause = %v; want ErrLockLost wrapping EIO", cause)
	}
	if retries == 0 {
		t.Error("a failed refresh was not retried")
	}
	if now := clock.Now(); now.Before(start.Add(3 * time.Second)) {
		t.Errorf("gave up at %v, before the lifetime ran out at %v", now, start.Add(3*time.Second))
	}
	if err := stop(); !errors.Is(err, ErrLockLost) {
		t.Errorf("stop() = %v; want ErrLockLost", err)
	}
	failing.Lock()
	fail = false
	failing.Unlock()
}

// TestKeepAliveAfterSuspend: the wall clock jumps past the expiry while
// the timers, which run on the monotonic clock, do not move. The next
// wake, at most wallCheck away, finds the lease over: others may be
// breaking the lock this very moment, so the keep-alive does not extend
// it (that could change an instance under a breaker) but reports it lost,
// and leaves the lock file for others to break.
func TestKeepAliveAfterSuspend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, clock := keptLock(t, WithLifetime(time.Minute))
	expiry, err := l.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := l.KeepAlive(context.Background())
	defer stop()
	d, _ := clock.nextTimer(t, ctx)
	if d > wallCheck {
		t.Fatalf("keep-alive waits %v at a time; want at most %v", d, wallCheck)
	}
	clock.Jump(time.Hour)
	clock.Advance(d)
	<-ctx.Done()
	if got, err := l.Expiration(); err != nil || !got.Equal(expiry) {
		t.Errorf("Expiration() = %v, %v; want %v (not extended after the lease ran out)", got, err, expiry)
	}
	// Said at once, by the Lock's own clocks, before any look at the
	// lock file, which a filesystem that hangs after the resume would
	// hold up (TestKeepAliveCancelsAfterSuspendOnHungFilesystem).
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), "our lifetime ran out at") {
		t.Errorf("context.Cause = %v; want ErrLockLost saying the lease ran out", cause)
	}
}

func TestKeepAliveEnds(t *testing.T) {
	t.Run("parent cancelled", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		l, _ := keptLock(t)
		why := errors.New("shutting down")
		parent, cancel := context.WithCancelCause(context.Background())
		ctx, stop := l.KeepAlive(parent)
		cancel(why)
		<-ctx.Done()
		if err := stop(); err != nil {
			t.Errorf("stop() = %v; want nil", err)
		}
		if err := context.Cause(ctx); err != why {
			t.Errorf("context.Cause = %v; want the parent's cause", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		l, clock := keptLock(t)
		ctx, stop := l.KeepAlive(context.Background())
		clock.nextTimer(t, ctx)
		l.Close()
		<-ctx.Done()
		if err := stop(); !errors.Is(err, ErrClosed) {
			t.Errorf("stop() = %v; want ErrClosed", err)
		}
	})
	t.Run("released", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		l, clock := keptLock(t)
		ctx, stop := l.KeepAlive(context.Background())
		d, _ := clock.nextTimer(t, ctx)
		l.Release()
		clock.Advance(d)
		<-ctx.Done()
		if err := stop(); !errors.Is(err, ErrNotLocked) || errors.Is(err, ErrLockLost) {
			t.Errorf("stop() = %v; want ErrNotLocked", err)
		}
	})
	t.Run("not held", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		l, err := New(filepath.Join(t.TempDir(), "app.lck"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := l.KeepAlive(context.Background())
		if cause := context.Cause(ctx); !errors.Is(cause, ErrNotLocked) {
			t.Errorf("context.Cause = %v; want ErrNotLocked", cause)
		}
		if err := stop(); !errors.Is(err, ErrNotLocked) {
			t.Errorf("stop() = %v; want ErrNotLocked", err)
		}
		l.Close()
		ctx, stop = l.KeepAlive(context.Background())
		if err := stop(); !errors.Is(err, ErrClosed) || !errors.Is(context.Cause(ctx), ErrClosed) {
			t.Errorf("after Close, stop() = %v, cause %v; want ErrClosed", err, context.Cause(ctx))
		}
	})
}

// TestDeadOwnerBreak: a lock of this host whose pid is gone is broken at
// once with WithDeadOwnerBreak, and only when it expires without.
func TestDeadOwnerBreak(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dead := deadPID(t)
	tests := []struct {
		name  string
		host  string
		pid   int
		opts  []Option
		taken bool
	}{
		{"dead pid, opted in", host, dead, []Option{WithDeadOwnerBreak()}, true},
		{"dead pid, default", host, dead, nil, false},
		{"live pid", host, os.Getppid(), []Option{WithDeadOwnerBreak()}, false},
		{"other host", "elsewhere", dead, []Option{WithDeadOwnerBreak()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.lck")
			holder := path + "|" + tt.host + "|" + strconv.Itoa(tt.pid) + "|7"
			if err := os.WriteFile(holder, []byte(holder), 0o644); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Hour)
			os.Chtimes(holder, future, future)
			if err := os.Link(holder, path); err != nil {
				t.Fatal(err)
			}
			l, err := New(path, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if ok, err := l.TryAcquire(); ok != tt.taken || err != nil {
				t.Errorf("TryAcquire() = %v, %v; want %v", ok, err, tt.taken)
			}
		})
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Skipf("cannot start a process: %v", err)
	}
	p.Wait()
	return p.Pid
}

// TestKeepAliveWallSetBack: a holder whose wall clock is set back an hour
// while KeepAlive keeps its lock goes on refreshing, by a clock that no
// one sets: another process does not get the lock, and the holder's
// context stays live. Scheduled by the wall clock, the refreshes stopped
// for an hour, the lease ran out and the other process broke the lock
// while the holder believed it kept (issue 11).
func TestKeepAliveWallSetBack(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 8 s of real time for lifetimes to pass: runs without -short (.ci/test)")
	}
	path := filepath.Join(t.TempDir(), "app.lck")
	clk := newSetClock()
	h := newLock(t, path, clk.options(WithLifetime(2*time.Second), WithClockSlop(time.Second))...)
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, stop := h.KeepAlive(context.Background())
	defer stop()
	clk.wall.Store(int64(-time.Hour))
	o := newLock(t, path, WithLifetime(2*time.Second), WithClockSlop(time.Second))
	tctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := o.Acquire(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("another Lock's Acquire() while the holder keeps the lock = %v; want %v", err, context.DeadlineExceeded)
	}
	if err := context.Cause(ctx); err != nil {
		t.Errorf("the holder's KeepAlive context ended: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("stop() = %v; want nil", err)
	}
}
