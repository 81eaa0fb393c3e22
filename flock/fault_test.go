//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// These tests inject what a real filesystem here cannot be made to do on
// demand: lost replies, a link count of 1, passing read errors.

func faultyLock(t *testing.T, f *fsystest.Faulty, opts ...Option) (*Lock, string) {
	t.Helper()
	dir := t.TempDir()
	if f.FS == nil {
		f.FS = fsys.OS
	}
	l, err := New(filepath.Join(dir, "app.lck"), append(opts, withFS(f))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

func linkErr(oldname, newname string, errno syscall.Errno) error {
	return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: errno}
}

func checkHeldThenClean(t *testing.T, l *Lock, dir string) {
	t.Helper()
	if ok, err := l.IsLocked(); !ok || err != nil {
		t.Fatalf("IsLocked() = %v, %v; want true", ok, err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestLostLinkReply: link succeeds on the server but the reply is lost
// and the retransmission answers EEXIST (or ENOENT, or ESTALE). The lock
// file is recognised as ours at once: TryAcquire, which does not wait
// out an expiry, takes it.
func TestLostLinkReply(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EEXIST, syscall.ENOENT, syscall.ESTALE} {
		t.Run(errno.Error(), func(t *testing.T) {
			var calls atomic.Int32
			f := &fsystest.Faulty{OnLink: func(next func(string, string) error, o, n string) error {
				if calls.Add(1) == 1 {
					if err := next(o, n); err != nil {
						return err
					}
					return linkErr(o, n, errno)
				}
				return next(o, n)
			}}
			l, dir := faultyLock(t, f)
			if ok, err := l.TryAcquire(); !ok || err != nil {
				t.Fatalf("TryAcquire = %v, %v; want true, nil", ok, err)
			}
			checkHeldThenClean(t, l, dir)
		})
	}
}

// TestTransientNotFound: link reports ENOENT or ESTALE without linking,
// as some NFS clients do right after the claim was written.
func TestTransientNotFound(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOENT, syscall.ESTALE} {
		t.Run(errno.Error(), func(t *testing.T) {
			var calls atomic.Int32
			f := &fsystest.Faulty{OnLink: func(next func(string, string) error, o, n string) error {
				if calls.Add(1) <= 2 {
					return linkErr(o, n, errno)
				}
				return next(o, n)
			}}
			l, dir := faultyLock(t, f)
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatalf("Acquire = %v", err)
			}
			checkHeldThenClean(t, l, dir)
		})
	}
}

// TestNoLinkCount: a filesystem that reports a link count of 1 and no
// inode numbers, as sshfs and SMB do. Ownership is decided by contents.
func TestNoLinkCount(t *testing.T) {
	clock := testenv.NewClock(time.Now())
	a, dir := faultyLock(t, fsystest.NoIdentityFS(fsys.OS), WithLifetime(time.Minute))
	b, err := New(a.Path(), withFS(fsystest.NoIdentityFS(fsys.OS)), WithClock(clock), withoutTimeBase())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if s, _ := a.State(); s != Ours {
		t.Errorf("State() = %v; want ours", s)
	}
	if err := a.Refresh(0); err != nil {
		t.Errorf("Refresh = %v", err)
	}
	if ok, _ := b.TryAcquire(); ok {
		t.Fatal("b took a held lock")
	}
	clock.Advance(time.Hour)
	if ok, err := b.TryAcquire(); !ok || err != nil {
		t.Fatalf("b.TryAcquire() after expiry = %v, %v", ok, err)
	}
	if ok, err := a.IsLocked(); ok || !errors.Is(err, ErrLockLost) {
		t.Errorf("a.IsLocked() = %v, %v; want ErrLockLost", ok, err)
	}
	a.Release()
	checkHeldThenClean(t, b, dir)
}

// TestLinkRefused: sshfs answers EPERM for a link onto an existing name;
// that is contention. Where the lock file does not exist, a refused link
// means the filesystem has no hard links.
func TestLinkRefused(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOTSUP, syscall.ENOSYS, syscall.EMLINK} {
		t.Run(errno.Error(), func(t *testing.T) {
			refuseExisting := func(next func(string, string) error, o, n string) error {
				if _, err := os.Lstat(n); err == nil {
					return linkErr(o, n, errno)
				}
				return next(o, n)
			}
			a, dir := faultyLock(t, &fsystest.Faulty{OnLink: refuseExisting})
			b, err := New(a.Path(), withFS(&fsystest.Faulty{FS: fsys.OS, OnLink: refuseExisting}))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := a.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.TryAcquire(); ok || err != nil {
				t.Fatalf("TryAcquire of a held lock = %v, %v; want false, nil", ok, err)
			}
			a.Release()

			// Without hard links the lock is published the portable
			// way, and still excludes the Locks that link: both by
			// renaming without replacing, and where that is refused too
			// (NFS, FUSE) by creating the lock file.
			refuseAll := func(next func(string, string) error, o, n string) error { return linkErr(o, n, errno) }
			noRename := func(next func(string, string) error, o, n string) error { return errors.ErrUnsupported }
			for _, faulty := range []*fsystest.Faulty{
				{FS: fsys.OS, OnLink: refuseAll},
				{FS: fsys.OS, OnLink: refuseAll, OnRenameNoReplace: noRename},
			} {
				c, err := New(a.Path(), withFS(faulty))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := c.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire without hard links = %v", err)
				}
				if ok, err := b.TryAcquire(); ok || err != nil {
					t.Fatalf("TryAcquire of a lock held without links = %v, %v; want false, nil", ok, err)
				}
				if err := c.Release(); err != nil {
					t.Fatalf("Release without hard links = %v", err)
				}
				if ok, err := b.TryAcquire(); !ok || err != nil {
					t.Fatalf("TryAcquire after the release = %v, %v; want true, nil", ok, err)
				}
				d, err := New(a.Path(), withFS(faulty))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				if ok, err := d.TryAcquire(); ok || err != nil {
					t.Fatalf("TryAcquire without links of a linked lock = %v, %v; want false, nil", ok, err)
				}
				if err := b.Release(); err != nil {
					t.Fatal(err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("left behind: %v", ents)
				}
			}
		})
	}
}

// TestRetryErrnos: errors reading the lock file listed by WithRetryErrnos
// are waited out; others fail Acquire at once.
//
// The holder lets go only once the waiter has read the held lock file and
// failed three times, which the fault hook tells: a fixed sleep instead
// could end before a loaded machine's waiter reached the lock, which then
// met the errors after taking it, where they are not to be waited out.
func TestRetryErrnos(t *testing.T) {
	const failures = 3
	flaky := func(failed chan<- struct{}) *fsystest.Faulty {
		var calls atomic.Int32
		return &fsystest.Faulty{OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			if filepath.Base(p) != "app.lck" {
				return next(p)
			}
			switch n := calls.Add(1); {
			case n < failures:
			case n == failures:
				close(failed)
			default:
				return next(p)
			}
			return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EIO}
		}}
	}
	for _, retry := range []bool{true, false} {
		var opts []Option
		if retry {
			opts = append(opts, WithRetryErrnos(syscall.EIO))
		}
		failed := make(chan struct{})
		l, dir := faultyLock(t, flaky(failed), opts...)
		holder, err := New(l.Path())
		if err != nil {
			t.Fatal(err)
		}
		if err := holder.Acquire(context.Background()); err != nil {
			t.Fatalf("holder's Acquire = %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Acquire(context.Background()) }()
		if retry {
			select {
			case <-failed:
			case err := <-done:
				t.Fatalf("Acquire with EIO retried = %v while the lock was held; want it to wait", err)
			case <-time.After(time.Minute):
				t.Fatalf("the waiter did not read the held lock file %d times within a minute", failures)
			}
			holder.Close()
			if err := <-done; err != nil {
				t.Errorf("Acquire with EIO retried = %v", err)
			}
			checkHeldThenClean(t, l, dir)
		} else {
			err := <-done
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("Acquire with EIO not retried = %v; want EIO", err)
			}
			holder.Close()
		}
	}
}

// TestBreakRestoresFreshLock: a breaker that judged an old instance
// expired, but finds a fresh one by the time it moves the lock file aside,
// puts the fresh one back; its holder keeps the lock.
func TestBreakRestoresFreshLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	os.WriteFile(path, []byte("old holder"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	fresh, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	// Between the breaker's read and its rename, another process breaks
	// the old instance and takes the lock.
	f := &fsystest.Faulty{FS: fsys.OS}
	var once atomic.Bool
	f.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && once.CompareAndSwap(false, true) {
			os.Remove(path)
			if ok, err := fresh.TryAcquire(); !ok || err != nil {
				t.Errorf("fresh.TryAcquire() = %v, %v", ok, err)
			}
		}
		return next(o, n)
	}
	breaker, err := New(path, withFS(f), WithClockSlop(0))
	if err != nil {
		t.Fatal(err)
	}
	defer breaker.Close()
	if ok, err := breaker.TryAcquire(); ok || err != nil {
		t.Fatalf("breaker.TryAcquire() = %v, %v; want false: the lock is fresh", ok, err)
	}
	if ok, err := fresh.IsLocked(); !ok || err != nil {
		t.Errorf("fresh.IsLocked() = %v, %v; the breaker took a fresh lock", ok, err)
	}
}

// TestBreakerPausedWhileRecheckingMovesNothing: a breaker that pauses
// while it reads the lock file again, holding the breakers' lock, must not
// move what stands there after the pause: its holder may have released
// the instance it read, and another process taken the lock, after waiting
// for the breaker as long as it does. The pause is staged inside the
// breaker's second open of the lock file.
func TestBreakerPausedWhileRecheckingMovesNothing(t *testing.T) {
	clock := newStepClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	var opens atomic.Int32
	var moved atomic.Bool
	var swap func()
	breakerFS := &fsystest.Faulty{FS: fsys.OS,
		OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			f, err := next(p)
			if p == path && opens.Add(1) == 2 {
				swap()
				clock.Jump(time.Second)
			}
			return f, err
		},
		OnRename: func(next func(string, string) error, o, n string) error {
			if o == path {
				moved.Store(true)
			}
			return next(o, n)
		},
	}
	lock := func(opts ...Option) *Lock {
		l, err := New(path, append(opts, WithClock(clock))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	holder, next, breaker := lock(), lock(), lock(withFS(breakerFS))
	if ok, err := holder.TryAcquire(); !ok || err != nil {
		t.Fatalf("holder.TryAcquire() = %v, %v", ok, err)
	}
	swap = func() {
		if err := holder.Release(); err != nil {
			t.Errorf("holder.Release() = %v", err)
		}
		if ok, err := next.TryAcquire(); !ok || err != nil {
			t.Errorf("next.TryAcquire() = %v, %v", ok, err)
		}
	}
	if broke, err := breaker.Break(true); broke || err != nil {
		t.Errorf("Break(true) across a pause = %v, %v; want false, nil", broke, err)
	}
	if moved.Load() {
		t.Errorf("the breaker moved the lock file that the next holder took during its pause")
	}
	if ok, err := next.IsLocked(); !ok || err != nil {
		t.Errorf("next.IsLocked() = %v, %v; want true", ok, err)
	}
}
