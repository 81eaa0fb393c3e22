//go:build unix

package flock

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// pausingClock is the system clock set off (a host whose clock is behind
// the filesystem's), whose next Now, once armed, is "suspended" for pause
// after the wall clock was read and before the run clock is: as on Linux
// when the machine suspends between time.Now and systemRunClock's read
// of CLOCK_BOOTTIME (or while waiting on its mutex): the offset read then
// includes the suspend, and the reading pairs a wall clock from before
// the suspend with a run clock from after it.
type pausingClock struct {
	start time.Time
	off   time.Duration
	pause time.Duration
	armed atomic.Bool
	trace func(string)
}

func (c *pausingClock) Now() time.Time {
	w := time.Now().Round(0).Add(c.off)
	if c.armed.CompareAndSwap(true, false) {
		if c.trace != nil {
			c.trace("pause")
		}
		time.Sleep(c.pause)
	}
	return w
}
func (c *pausingClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// run counts the suspend, as CLOCK_BOOTTIME does.
func (c *pausingClock) run() time.Duration { return time.Since(c.start) }

// armingFile arms the clock when the claim's times are set: the next
// clock reading is observe's "after", read right after the fstat.
type armingFile struct {
	fsys.File
	arm *atomic.Bool
	clk *pausingClock
}

func (f armingFile) SetTimes(t time.Time) error {
	err := f.File.SetTimes(t)
	if f.arm.Load() {
		f.arm.Store(false)
		f.clk.armed.Store(true)
	}
	return err
}

// TestSuspendInRefreshSampleTeachesNothing (adversarial review of the time
// base, finding 1): a holder whose
// clock is a minute behind the filesystem's (the skew the time base is
// for) refreshes; the machine suspends for 5 s (longer than the 2 s
// lifetime and the 1 s slop) in the reading that closes the refresh's
// sample, between its wall read (time.Now) and its run read
// (systemRunClock's CLOCK_BOOTTIME offset, re-read after the suspend).
// That reading pairs a wall clock from before the suspend with a run
// clock from after it; observe derives the sample's "before" run reading
// from it, so the new sample's upper bound lags the filesystem's clock by
// the whole suspend. The refresh then looks (L is still its own: no one
// has broken it yet) and asks leaseOver(old), the check meant for "a
// pause since the lease was judged": the lagging bound says no, and
// Refresh returns nil with an expiry already 3 s past by the filesystem's
// clock. Another process breaks it at once; the holder still counts its
// lease as running (until the next refresh, a third of the lifetime on):
// two holders, after a look that should have caught it. Now a sample
// whose bracket the two clocks disagree on teaches nothing, and the
// earlier sample, carried by the run clock, shows the lease over.
func TestSuspendInRefreshSampleTeachesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 5 s of real time through a suspend: runs without -short (.ci/test)")
	}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := &pausingClock{start: time.Now(), off: -time.Minute, pause: 5 * time.Second}
	var arm atomic.Bool
	fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return armingFile{File: f, arm: &arm, clk: clk}, nil
	}}
	h := newLock(t, path, WithClock(clk), withRunClock(clk.run), withFS(fs), WithLifetime(2*time.Second), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	arm.Store(true)
	if err := h.Refresh(0); err != nil {
		if !errors.Is(err, ErrLockLost) {
			t.Errorf("Refresh() across a 5 s suspend = %v; want ErrLockLost", err)
		}
		return
	}
	expiry, _, _, _ := h.acq.state()
	t.Logf("Refresh() = nil; h's expiry %v, the filesystem's now %v (%v past it)", expiry, time.Now().Round(0), time.Since(expiry))
	b := newLock(t, path, WithLifetime(2*time.Second), WithClockSlop(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx); err != nil {
		t.Logf("b.Acquire() = %v (no second holder)", err)
		return
	}
	if _, hi := h.fsNow(); !h.leaseOver(expiry) {
		t.Errorf("two holders: b acquired the lock while h, whose Refresh returned nil after the suspend, counts its lease as running for %v more (h's upper bound %v, the filesystem's now %v, h's expiry %v)",
			expiry.Sub(hi), hi, time.Now().Round(0), expiry)
	}
}

// stopClock is a host a minute behind the filesystem's clock whose run
// clock is Go's monotonic one (systems other than Linux and Apple's):
// it stops while the machine is suspended, and goes on after.
type stopClock struct {
	mu        sync.Mutex
	start     time.Time
	stopped   time.Duration // total time suspended
	stoppedAt time.Time     // non-zero while suspended
}

func (c *stopClock) Now() time.Time                       { return time.Now().Round(0).Add(-time.Minute) }
func (c *stopClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }
func (c *stopClock) run() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stoppedAt.IsZero() {
		return c.stoppedAt.Sub(c.start) - c.stopped
	}
	return time.Since(c.start) - c.stopped
}
func (c *stopClock) suspend() { c.mu.Lock(); c.stoppedAt = time.Now(); c.mu.Unlock() }
func (c *stopClock) resume() {
	c.mu.Lock()
	c.stopped += time.Since(c.stoppedAt)
	c.stoppedAt = time.Time{}
	c.mu.Unlock()
}

// TestStoppedRunClockResumeEndsLease (adversarial review of the time base,
// finding 2): on a system whose run clock
// is Go's monotonic clock, a holder a minute behind the filesystem's clock
// sleeps 5 s through its 2 s lease (plus 1 s slop); another process breaks
// and takes the lock meanwhile. After the wake, the holder's upper bound
// still comes from its pre-suspend sample carried by the stopped clock, so
// leaseOver says its lease runs on, although the doc (Time base) says a
// sample from before such a suspend is forgotten (only sampleStale knows:
// fsBounds uses it regardless), and (Leases) that a KeepAlive that waited
// through a suspend looks at once when the machine wakes: its context is
// still live 1.5 s after the wake. Now such a clock's bounds take the wall
// clock's count where that is the safe side, and the keeper looks at a
// lease that is over without waiting for its refresh to fall due.
func TestStoppedRunClockResumeEndsLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 7 s of real time through a suspend: runs without -short (.ci/test)")
	}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := &stopClock{start: time.Now()}
	h := newLock(t, path, WithClock(clk), withStoppingRunClock(clk.run), WithLifetime(3*time.Second), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	clk.suspend()
	time.Sleep(5 * time.Second)
	b := newLock(t, path, WithLifetime(3*time.Second), WithClockSlop(time.Second))
	if ok, err := b.TryAcquire(); !ok || err != nil {
		t.Fatalf("b.TryAcquire() of a lock 2 s past expiry and slop = %v, %v", ok, err)
	}
	clk.resume()
	expiry, _, _, _ := h.acq.state()
	if _, hi := h.fsNow(); !h.leaseOver(expiry) {
		t.Errorf("after the wake, b holds the lock and h counts its lease as running for %v more (expiry %v, the filesystem's now %v)", expiry.Sub(hi), expiry, time.Now().Round(0))
	}
	time.Sleep(1500 * time.Millisecond)
	if kctx.Err() == nil {
		t.Errorf("KeepAlive's context still live 1.5 s after the wake, while b holds the lock")
	}
}
