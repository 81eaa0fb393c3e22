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

// TestKeepAliveCancelsAfterSuspendWhileIsLockedStalls (review 5): the
// holder keeps the lock alive; its own IsLocked stalls in its look at the
// lock file (a hard NFS mount whose server went away), holding the
// Lock's mutex. The machine is then suspended for 2 minutes (the run
// clock, which counts suspends, and the wall clock both jump). When the
// keeper wakes, the lease is over already, so since ff8d163 it calls
// refreshFor synchronously, which blocks on the mutex held by the stalled
// IsLocked: KeepAlive's context is not cancelled, however long the stall
// lasts, although the lease is over by the Lock's own clocks and others
// may break and take the lock (KeepAlive's doc: "the context is cancelled
// then, by the Lock's own clock").
// Now the keeper reports the loss before it refreshes.
func TestKeepAliveCancelsAfterSuspendWhileIsLockedStalls(t *testing.T) {
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
	clk := &stepRunClock{start: time.Now()}
	const life = 3 * time.Second
	h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	armed.Store(true)
	got := make(chan error, 1)
	go func() { _, err := h.IsLocked(); got <- err }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("IsLocked made no Lstat of the lock path within 5 s")
	}
	// A suspend of 2 minutes: both clocks jump.
	clk.run.Add(int64(2 * time.Minute))
	clk.wall.Add(int64(2 * time.Minute))
	expiry, _, _, _ := h.acq.state()
	if !h.leaseOver(expiry) {
		t.Fatal("lease not over after the suspend")
	}
	select {
	case <-kctx.Done():
	case <-time.After(4 * time.Second):
		t.Errorf("lease over by the Lock's clocks (expiry %v) for 4 s while IsLocked stalled, and KeepAlive's context is not cancelled", expiry)
	}
	close(release)
	released = true
	if err := <-got; !errors.Is(err, ErrLockLost) {
		t.Errorf("IsLocked after the suspend = %v; want ErrLockLost", err)
	}
}

// TestKeepAliveCancelsAfterSuspendOnHungFilesystem (review 5): the
// holder keeps the lock alive, with nothing else calling the Lock. The
// machine is suspended for 2 minutes and, on resume, the network
// filesystem no longer answers (every call hangs). The keeper wakes with
// the lease over already, and since ff8d163 refreshes synchronously: the
// refresh finds the lease over and gives the lock up, and its removal of
// the claim file (lose, dropClaim) hangs, so KeepAlive's context is not
// cancelled until the filesystem answers, though the lease is over by the
// Lock's own clocks.
// Now the keeper reports the loss before it refreshes.
func TestKeepAliveCancelsAfterSuspendOnHungFilesystem(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	var hung atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	hang := func() {
		if hung.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
	}
	fs := &fsystest.Faulty{FS: fsys.OS,
		OnLstat: func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
			hang()
			return next(p)
		},
		OnRemove: func(next func(string) error, p string) error {
			hang()
			return next(p)
		},
		OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			hang()
			return next(p)
		},
	}
	clk := &stepRunClock{start: time.Now()}
	const life = 3 * time.Second
	h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer func() {
		if released {
			stop()
		}
	}()
	hung.Store(true)
	clk.run.Add(int64(2 * time.Minute))
	clk.wall.Add(int64(2 * time.Minute))
	select {
	case <-kctx.Done():
	case <-time.After(4 * time.Second):
		stuck := false
		select {
		case <-entered:
			stuck = true
		default:
		}
		t.Errorf("lease over by the Lock's clocks for 4 s after a suspend, and KeepAlive's context is not cancelled (keeper stuck in a filesystem call: %v)", stuck)
	}
	close(release)
	released = true
}
