//go:build linux

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"golang.org/x/sys/unix"
)

func s20Aged(t *testing.T, path, contents string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

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
	s20Aged(t, filepath.Join(dir, filepath.Base(named)), named, time.Hour)
	if err := os.Link(filepath.Join(dir, filepath.Base(named)), path); err != nil {
		t.Fatal(err)
	}
	stale := claim.Name(path, "|", host, dead, 9, fsys.OS.Namespace())
	s20Aged(t, filepath.Join(dir, filepath.Base(stale)), stale, time.Hour)
	time.Sleep(2500 * time.Millisecond) // past linkSettle
	l := newLock(t, path, WithHostname(host))
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 {
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
	s20Aged(t, path, "app.lck|elsewhere|1|1", -time.Hour) // live, not expired
	if err := unix.Mkfifo(path+".break", 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLock(t, path)
	if _, err := l.Break(true); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Break(true) with a FIFO at L.break = %v; want ErrNotRegular", err)
	}
	host, _ := os.Hostname()
	s20Aged(t, path, claim.Name(path, "|", host, deadPID(t), 1, fsys.OS.Namespace()), -time.Hour)
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

// TestS20ClosedVsCtxUnderWay: an Acquire that holds the Lock's turn, and
// whose context is done by the time Close is called, returns ErrClosed,
// as one queued behind it does (helper 83: it returned the context's
// error).
func TestS20ClosedVsCtxUnderWay(t *testing.T) {
	inLink, unblock := make(chan struct{}), make(chan struct{})
	f := &fsystest.Faulty{OnLink: func(next func(string, string) error, oldname, newname string) error {
		select {
		case inLink <- struct{}{}:
			<-unblock
		default:
		}
		return next(oldname, newname)
	}}
	l, dir := faultyLock(t, f)
	s20Aged(t, filepath.Join(dir, "app.lck"), "app.lck|elsewhere|1|1", -time.Hour) // another's, live
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- l.Acquire(ctx) }()
	<-inLink // its attempt holds the mutex
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	<-l.closing
	// The queued Acquire, as the reviewed commit has it:
	if err := l.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("queued Acquire(done ctx) after Close = %v; want ErrClosed", err)
	}
	close(unblock)
	if err := <-got; !errors.Is(err, ErrClosed) {
		t.Errorf("the Acquire under way, ctx done and Close called = %v; want ErrClosed, as the queued one says", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestS20RefreshExpiryPassedAfterWrite: a refresh to a shorter lifetime
// whose expiry was still ahead when it was written, and passed during the
// look after it (a slow server), loses the lock and says when the expiry
// passed truly (helper 83: it said "by the time it was written").
func TestS20RefreshExpiryPassedAfterWrite(t *testing.T) {
	var armed atomic.Bool
	var wroteAt, expiryAt atomic.Int64
	f := &fsystest.Faulty{OnLstat: func(next func(string) (fsys.Info, error), path string) (fsys.Info, error) {
		if armed.CompareAndSwap(true, false) {
			wroteAt.Store(time.Now().UnixNano()) // the write is done: this is the look after it
			time.Sleep(300 * time.Millisecond)
		}
		return next(path)
	}}
	l, dir := faultyLock(t, f, WithLifetime(time.Minute))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	err := l.Refresh(100 * time.Millisecond)
	if armed.Load() {
		t.Fatal("no look after the write")
	}
	fi, _ := os.Stat(filepath.Join(dir, "app.lck"))
	expiryAt.Store(fi.ModTime().UnixNano())
	t.Logf("expiry written %v ahead of the end of the write", time.Duration(expiryAt.Load()-wroteAt.Load()))
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "passed before the refresh could confirm") {
		t.Errorf("Refresh = %v; want ErrLockLost saying the expiry passed before the look after the write (it was %v ahead when the write returned)", err, time.Duration(expiryAt.Load()-wroteAt.Load()))
	}
}
