//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestPlantedSymlinkPutBackReplacesNothing: between a breaker's last look
// at an expired lock file and its move aside, someone puts a symlink there;
// the breaker moves that aside, and while it reads it, another process takes
// the lock. The symlink is not what the breaker judged, and goes back only
// if the lock path is free: before this test it went back by a plain
// rename, which replaced the new holder's lock file with it (the review of
// 0945e86). A FIFO, a directory and a symlink are each tried.
func TestPlantedSymlinkPutBackReplacesNothing(t *testing.T) {
	for _, kind := range []string{"symlink", "fifo", "directory"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			os.WriteFile(path, []byte("old holder"), 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(path, old, old)
			holder, err := New(path)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close()
			f := &fsystest.Faulty{FS: fsys.OS}
			var aside string
			f.OnRename = func(next func(string, string) error, o, n string) error {
				if o != path || aside != "" {
					return next(o, n)
				}
				aside = n
				os.Remove(path)
				var err error
				switch kind {
				case "symlink":
					err = os.Symlink(filepath.Join(dir, "elsewhere"), path)
				case "fifo":
					err = unix.Mkfifo(path, 0o644)
				case "directory":
					err = os.Mkdir(path, 0o755)
				}
				if err != nil {
					t.Fatalf("planting a %s: %v", kind, err)
				}
				return next(o, n)
			}
			var took bool
			take := func(p string) {
				if p == aside && aside != "" && !took {
					// The breaker reads what it moved: the path is free, and
					// the holder takes the lock.
					took = true
					if ok, err := holder.TryAcquire(); !ok || err != nil {
						t.Errorf("holder.TryAcquire() = %v, %v", ok, err)
					}
				}
			}
			f.OnLstat = func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
				take(p)
				return next(p)
			}
			f.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				take(p)
				return next(p)
			}
			breaker, err := New(path, withFS(f), WithClockSlop(0))
			if err != nil {
				t.Fatal(err)
			}
			defer breaker.Close()
			ok, err := breaker.TryAcquire()
			t.Logf("breaker.TryAcquire() = %v, %v", ok, err)
			if aside == "" {
				t.Fatal("not staged: the breaker never moved the lock file aside")
			}
			if ok {
				t.Errorf("the breaker took the lock beside its holder")
			}
			if held, err := holder.IsLocked(); !held || err != nil {
				t.Errorf("holder.IsLocked() = %v, %v; the put-back replaced its lock file", held, err)
			}
			os.RemoveAll(aside)
		})
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

// hookedFile calls onSetTimes before it sets a file's times.
type hookedFile struct {
	fsys.File
	onSetTimes func(time.Time)
}

func (f hookedFile) SetTimes(t time.Time) error {
	f.onSetTimes(t)
	return f.File.SetTimes(t)
}

// TestPausedAcquirerRetimesOnlyItsClaim: an acquirer that pauses after
// it judged its lease still running, just before it writes the expiry of
// its new lock, while another process breaks its lock and takes it with a
// longer lifetime, writes that expiry onto its own orphaned claim, never
// onto the lock file that is now the other's: a third process does not
// break the other's lock early. The pause is staged in the acquirer's
// first call after its lease check (it last looks for a breaker at work
// before it): a time change, or an open of the lock path. (Mutant
// expiry-via-path opens the lock path and writes the expiry through it,
// shortening the new holder's lock; the simulation no longer reaches that
// window within its budget since the time base.)
func TestPausedAcquirerRetimesOnlyItsClaim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := newStepClock()
	const slop = 10 * time.Second
	fsA := &fsystest.Faulty{FS: fsys.OS}
	a := reviewLock(t, path, clock, fsA, WithLifetime(2*time.Second))
	b := reviewLock(t, path, clock, fsys.OS, WithLifetime(time.Minute))
	d := reviewLock(t, path, clock, fsys.OS, WithLifetime(time.Minute))
	var linked, checked, paused bool
	pause := func() {
		if !checked || paused {
			return
		}
		paused = true
		// A is held back past its lifetime and the slop, and the second
		// or two that B waits out where an expiry falls on a whole
		// second (cutBy): B breaks A's expired lock and takes it.
		clock.Advance(2*time.Second + slop + 3*time.Second)
		if held, err := b.TryAcquire(); err != nil || !held {
			t.Fatalf("B.TryAcquire() = %v, %v; want true", held, err)
		}
	}
	hook := func(f fsys.File, err error) (fsys.File, error) {
		if err != nil {
			return f, err
		}
		return hookedFile{f, func(time.Time) { pause() }}, nil
	}
	fsA.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, t time.Time) (fsys.File, error) {
		return hook(next(p, data, t))
	}
	fsA.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		switch {
		case p == path:
			pause()
		case p == path+".break" && linked:
			checked = true // the last look before the lease check
		}
		return hook(next(p))
	}
	fsA.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == path && err == nil {
			linked = true
		}
		return err
	}
	if held, err := a.TryAcquire(); err != nil || held {
		t.Fatalf("A.TryAcquire() = %v, %v; want false, nil: its lock was taken while it paused", held, err)
	}
	if !paused {
		t.Fatal("the pause was not staged")
	}
	bExpiry, _, _, _ := b.acq.state()
	if onDisk := mtimeOf(t, path); onDisk.Before(bExpiry) {
		t.Errorf("A re-timed B's lock file: expiry %v on disk; B counts on %v", onDisk, bExpiry)
	}
	// Past the expiry A wrote, and the slop; well within B's lease.
	clock.Advance(2*time.Second + slop + time.Second)
	if held, err := d.TryAcquire(); err != nil || held {
		t.Errorf("D.TryAcquire() within B's lease (to %v, now %v) = %v, %v; want false, nil", bExpiry, clock.Now(), held, err)
	}
	if ok, err := b.IsLocked(); !ok || err != nil {
		t.Errorf("B.IsLocked() = %v, %v; want true", ok, err)
	}
}

// TestBreakerWhoseBreakersLockWasTakenMovesNothing: a breaker whose
// breakers' lock L.break was broken and taken by another breaker while
// it paused, though its own lease on it runs by its clock (as where one
// mount stamps files with its client's clock, which the simulation's
// client-stamps schedules found), moves nothing: it looks at L.break
// before it reads the lock file again. Otherwise two breakers are at work
// at once: the other moves the expired lock aside, A takes the lock, the
// first moves A's fresh lock aside, finds it is not what it judged, and
// while it is aside C takes the lock, so the first cannot put it back and
// A and C both hold the lock. (Mutant breakers-no-relook; the simulation
// no longer finds it within its budget since the time base.)
func TestBreakerWhoseBreakersLockWasTakenMovesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	breakers := path + ".break"
	clock := newStepClock()
	// A dead holder's lock, expired an hour ago.
	dead := path + "|gone|4242|1"
	if err := os.WriteFile(dead, []byte(dead), 0o644); err != nil {
		t.Fatal(err)
	}
	old := clock.Now().Add(-time.Hour)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(dead, path); err != nil {
		t.Fatal(err)
	}
	fsB := &fsystest.Faulty{FS: fsys.OS}
	b := reviewLock(t, path, clock, fsB)
	a := reviewLock(t, path, clock, fsys.OS)
	c := reviewLock(t, path, clock, fsys.OS)
	// The other breaker's breakers' lock, fresh.
	other := path + "|otherhost|4343|2"
	if err := os.WriteFile(other, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := clock.Now().Add(breakTTL)
	if err := os.Chtimes(other, fresh, fresh); err != nil {
		t.Fatal(err)
	}
	var staged, moved, aHeld, cHeld bool
	fsB.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == breakers && err == nil && !staged {
			staged = true
			// B holds L.break, and pauses: the other breaker breaks it
			// and takes it.
			if err := os.Remove(breakers); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(other, breakers); err != nil {
				t.Fatal(err)
			}
		}
		return err
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !moved {
			moved = true
			// The other breaker moves the expired lock aside and removes
			// it and its claim, and gives up L.break; A takes the lock.
			for _, p := range []string{path, dead, breakers, other} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if aHeld, err = a.TryAcquire(); err != nil || !aHeld {
				t.Fatalf("A.TryAcquire() = %v, %v; want true", aHeld, err)
			}
		}
		return next(o, n)
	}
	fsB.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == path && aHeld && !cHeld {
			// B puts A's lock back; C takes the lock first.
			var err error
			if cHeld, err = c.TryAcquire(); err != nil {
				t.Fatalf("C.TryAcquire() = %v", err)
			}
		}
		return next(o, n)
	}
	broke, err := b.Break(false)
	if !staged {
		t.Fatal("the pause was not staged")
	}
	if broke || err != nil || moved {
		t.Errorf("Break(false) by a breaker whose breakers' lock was taken = %v, %v (moved the lock file: %v); want false, nil, nothing moved", broke, err, moved)
	}
	if aHeld && cHeld {
		ok, err := a.IsLocked()
		t.Errorf("two holders within their leases: A (IsLocked() = %v, %v) and C", ok, err)
	}
}

// TestLearnTimeLostCreateReply: the file that Inspect writes to learn the
// filesystem's clock is removed even when the reply to its create is lost
// and the retransmission answers EEXIST (seed 5100460 of the simulation,
// on sshfs, left it behind).
func TestLearnTimeLostCreateReply(t *testing.T) {
	var lost atomic.Bool
	f := &fsystest.Faulty{OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, t time.Time) (fsys.File, error) {
		file, err := next(p, data, t)
		if err == nil && lost.CompareAndSwap(false, true) {
			file.Close()
			return nil, &os.PathError{Op: "create", Path: p, Err: syscall.EEXIST}
		}
		return file, err
	}}
	l, dir := faultyLock(t, f)
	if _, err := l.Inspect(); err != nil {
		t.Fatal(err)
	}
	if !lost.Load() {
		t.Fatal("no create's reply was lost")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestRefreshTooShort: a refresh to a shorter lifetime whose expiry
// passes before its look after the write is done loses the lock, and says
// so: not that the old lifetime had run out, which it had not, nor that
// the expiry had passed when it was written (helper 83: with a 100 ms
// lifetime it was still ahead then). A pause in that look makes sure the
// expiry passes.
func TestRefreshTooShort(t *testing.T) {
	for _, tt := range []struct{ lifetime, pause time.Duration }{
		{time.Nanosecond, 20 * time.Millisecond},
		{100 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			var armed atomic.Bool
			f := &fsystest.Faulty{OnLstat: func(next func(string) (fsys.Info, error), path string) (fsys.Info, error) {
				if armed.CompareAndSwap(true, false) {
					time.Sleep(tt.pause)
				}
				return next(path)
			}}
			l, _ := faultyLock(t, f, WithLifetime(time.Minute))
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			err := l.Refresh(tt.lifetime)
			if armed.Load() {
				t.Fatal("Refresh made no look after its write")
			}
			if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "passed before the refresh could confirm") {
				t.Errorf("Refresh(%v) = %v; want ErrLockLost for the refresh's own expiry", tt.lifetime, err)
			}
			if err := l.Release(); !errors.Is(err, ErrLockLost) {
				t.Errorf("Release after Refresh(%v) = %v; want ErrLockLost", tt.lifetime, err)
			}
		})
	}
}

// linkHeld returns a Lock whose first link waits, once it has said so on
// entered, until release is called (at the latest as the test ends,
// before the Lock's Close, which waits for it), and the Lock's directory.
func linkHeld(t *testing.T) (l *Lock, dir string, entered <-chan struct{}, release func()) {
	inLink, unblock := make(chan struct{}), make(chan struct{})
	f := &fsystest.Faulty{OnLink: func(next func(string, string) error, oldname, newname string) error {
		select {
		case inLink <- struct{}{}:
			<-unblock
		default:
		}
		return next(oldname, newname)
	}}
	l, dir = faultyLock(t, f)
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	return l, dir, inLink, release
}

// TestClosedWhileAcquireUnderWay: once Close has been called, TryAcquire
// and an Acquire whose context is done say ErrClosed, even while an
// Acquire that Close is ending still holds the Lock's turn (its link held
// up here), rather than (false, nil) or the context's error.
func TestClosedWhileAcquireUnderWay(t *testing.T) {
	l, _, inLink, release := linkHeld(t)
	acquired := make(chan error, 1)
	go func() { acquired <- l.Acquire(context.Background()) }()
	<-inLink
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	<-l.closing
	if ok, err := l.TryAcquire(); ok || !errors.Is(err, ErrClosed) {
		t.Errorf("TryAcquire after Close = %v, %v; want ErrClosed", ok, err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 { // Acquire's select would pick at random
		if err := l.Acquire(done); !errors.Is(err, ErrClosed) {
			t.Errorf("Acquire(done ctx) after Close = %v; want ErrClosed", err)
			break
		}
	}
	release()
	if err := <-acquired; err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("the Acquire under way returned %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestClosedWhileAcquireUnderWayCtxDone: the Acquire under way itself,
// whose context is done by the time Close is called, returns ErrClosed
// too (helper 83: it returned the context's error).
func TestClosedWhileAcquireUnderWayCtxDone(t *testing.T) {
	l, dir, inLink, release := linkHeld(t)
	plant(t, filepath.Join(dir, "app.lck"), "app.lck|elsewhere|1|1", time.Now().Add(time.Hour)) // another's, live
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- l.Acquire(ctx) }()
	<-inLink // its attempt holds the Lock's turn and mutex
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	<-l.closing
	release()
	if err := <-got; !errors.Is(err, ErrClosed) {
		t.Errorf("the Acquire under way, ctx done and Close called = %v; want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
}
