//go:build linux

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestS20BackslashDir: a backslash in a directory's name (New refuses one
// only in the lock file's name): an expired lock's named claim is removed
// by a break, and a dead claim by the sweep, as in a directory without one.
func TestS20BackslashDir(t *testing.T) {
	for _, d := range []string{`a\b`, `ab`} {
		t.Run(d, func(t *testing.T) { s20BackslashDir(t, d) })
	}
}

func s20BackslashDir(t *testing.T, d string) {
	dir := filepath.Join(t.TempDir(), d)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.lck")
	host, _ := os.Hostname()
	dead := deadPID(t)
	named := claim.Name(path, "|", "elsewhere", 7, 5, 0)
	plant(t, filepath.Join(dir, filepath.Base(named)), named, time.Now().Add(-time.Hour))
	if err := os.Link(filepath.Join(dir, filepath.Base(named)), path); err != nil {
		t.Fatal(err)
	}
	stale := claim.Name(path, "|", host, dead, 9, fsys.OS.Namespace())
	plant(t, filepath.Join(dir, filepath.Base(stale)), stale, time.Now().Add(-time.Hour))
	time.Sleep(2500 * time.Millisecond) // past linkSettle
	l := newLock(t, path, WithHostname(host))
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	if names := testenv.Names(t, dir); len(names) != 2 {
		t.Errorf("left: %q", names)
	}
}

// TestS20NotRegularBreakersBeyondWaiters: a FIFO at L.break gives
// ErrNotRegular to every call about to break the lock, as its doc says:
// Break(true) of a live lock, and a dead-owner break of a lock that has
// not expired (helper 83 found the doc named only a waiter's break).
func TestS20NotRegularBreakersBeyondWaiters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	plant(t, path, "app.lck|elsewhere|1|1", time.Now().Add(time.Hour)) // live, not expired
	if err := unix.Mkfifo(path+".break", 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLock(t, path)
	if _, err := l.Break(true); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Break(true) with a FIFO at L.break = %v; want ErrNotRegular", err)
	}
	host, _ := os.Hostname()
	plant(t, path, claim.Name(path, "|", host, deadPID(t), 1, fsys.OS.Namespace()), time.Now().Add(time.Hour))
	l2 := newLock(t, path, WithHostname(host), WithDeadOwnerBreak())
	if _, err := l2.TryAcquire(); !errors.Is(err, ErrNotRegular) {
		t.Errorf("dead-owner TryAcquire with a FIFO at L.break = %v; want ErrNotRegular", err)
	}
	if fi, err := os.Lstat(path + ".break"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("L.break after the breaks: %v, %v; want the FIFO untouched", fi, err)
	}
}

// TestS20RefreshLostLifetime: Refresh(positive) that returns ErrLockLost
// leaves the Lock's lifetime (that of its next acquisition) as it was,
// whether the loss is found inside the call or was found before
// (helper 83: the first case changed it).
func TestS20RefreshLostLifetime(t *testing.T) {
	for _, noticed := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.lck")
		l := newLock(t, path, WithLifetime(time.Minute))
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		os.Remove(path) // someone broke it
		if noticed {
			if ok, err := l.IsLocked(); ok || !errors.Is(err, ErrLockLost) {
				t.Fatalf("IsLocked = %v, %v", ok, err)
			}
		}
		err := l.Refresh(time.Hour)
		if !errors.Is(err, ErrLockLost) {
			t.Fatalf("Refresh = %v", err)
		}
		if got := l.Lifetime(); got != time.Minute {
			t.Errorf("noticed before=%v: Refresh(1h) said ErrLockLost, Lifetime() = %v; want 1m (the loss changes nothing, as for a loss already noticed)", noticed, got)
		}
	}
}
