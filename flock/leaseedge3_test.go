//go:build unix

package flock

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestIsLockedStalledPastEarlyLoss: IsLocked is called while the
// lock is held and kept alive; its look at the lock file (an Lstat) stalls
// (a network filesystem that stopped answering) for longer than the lease.
// The keeper's refresh waits for the Lock's mutex, which IsLocked holds;
// the lease ends by the Lock's own clocks and the keeper cancels
// KeepAlive's context with ErrLockLost and ends the acquisition early
// (endEarly). No clock is stepped. When the look returns, IsLocked finds
// the lock file still ours and returns true, nil: noteEarlyLoss ran before
// the stalled look, and check never asks whether the lease is over. The
// very next IsLocked says ErrLockLost.
// (From the third review of the day's fixes.) Now IsLocked takes up the
// keep-alive's loss after its look, and judges the lease too.
func TestIsLockedStalledPastEarlyLoss(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	var armed atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	fs := &fsystest.Faulty{FS: fsys.OS, OnLstat: func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
		if p == path && armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return next(p)
	}}
	const life = 600 * time.Millisecond
	h := newLock(t, path, withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	armed.Store(true)
	type res struct {
		ok  bool
		err error
	}
	got := make(chan res, 1)
	go func() { ok, err := h.IsLocked(); got <- res{ok, err} }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("IsLocked made no Lstat of the lock path within 5 s")
	}
	select {
	case <-kctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive's context not cancelled while IsLocked held the mutex past the lease")
	}
	cause := context.Cause(kctx)
	close(release)
	released = true
	r := <-got
	if errors.Is(cause, ErrLockLost) && r.ok {
		ok2, err2 := h.IsLocked()
		t.Errorf("KeepAlive's context was cancelled with %v (the lease over by the Lock's own clocks) while IsLocked waited on the filesystem; that IsLocked then returned %v, %v; the next IsLocked = %v, %v", cause, r.ok, r.err, ok2, err2)
	}
}

// TestIsLockedPastLease: without any keep-alive or stall, IsLocked
// on a lock whose lease has run out by the Lock's own clocks returns true,
// while Refresh and Release (doc.go, Leases) report ErrLockLost for it.
// Now IsLocked says ErrLockLost past the lease, as Refresh and Release do.
func TestIsLockedPastLease(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	const life = 300 * time.Millisecond
	h := newLock(t, path, WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(life + 200*time.Millisecond)
	expiry, _, _, _ := h.acq.state()
	if !h.leaseOver(expiry) {
		t.Skip("lease not over yet")
	}
	ok, err := h.IsLocked()
	rerr := h.Refresh(0)
	if ok && errors.Is(rerr, ErrLockLost) {
		t.Errorf("lease over by the Lock's clocks: IsLocked() = %v, %v, and the Refresh right after = %v", ok, err, rerr)
	}
}

// TestStalledRefreshAfterEarlyLossIsLost: the holder's own Refresh
// stalls in its write (SetTimes), holding the mutex; the keeper's refresh
// waits behind it, the lease ends by the Lock's clocks (the host's wall
// clock runs 2 min fast, as in TestKeepAliveEarlyLossStaysLost), and the
// keeper cancels KeepAlive's context with ErrLockLost and ends the
// acquisition early. NTP steps the clock back and the write returns: the
// Refresh returns nil, after the loss was reported, and the next IsLocked
// says ErrLockLost (noteEarlyLoss, called only on entry). The lock file,
// with the fresh expiry that Refresh wrote, is left standing.
// Now the stuck Refresh takes up the keep-alive's loss before it returns.
func TestStalledRefreshAfterEarlyLossIsLost(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := &stepRunClock{start: time.Now()}
	clk.wall.Store(int64(2 * time.Minute))
	st, fs := stallingFS(t)
	const life = 1500 * time.Millisecond
	h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	st.on.Store(true)
	ref := make(chan error, 1)
	go func() { ref <- h.Refresh(0) }()
	select {
	case <-st.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5 s")
	}
	select {
	case <-kctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive's context not cancelled while a refresh stalled past the lease")
	}
	cause := context.Cause(kctx)
	clk.wall.Store(0)
	st.free()
	rerr := <-ref
	if errors.Is(cause, ErrLockLost) && rerr == nil {
		ok, ierr := h.IsLocked()
		t.Errorf("KeepAlive's context was cancelled with %v while the holder's Refresh stalled; that Refresh then returned nil, and the next IsLocked = %v, %v", cause, ok, ierr)
	}
}
