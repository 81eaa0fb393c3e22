//go:build unix

package flock

// Reproductions from an outside review. Each test FAILS while the attack
// works (it asserts the promise), so that it can serve as a regression
// test once the defect is fixed.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

func reviewLock(t *testing.T, path string, clock *stepClock, fs fsys.FS, opts ...Option) *Lock {
	t.Helper()
	l, err := New(path, append([]Option{WithClock(clock), withoutTimeBase(), withFS(fs), WithClockSlop(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mtimeOf(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// Attack: a paused acquirer on a filesystem without identity (sshfs, SMB).
// linked() sets the times through a descriptor of the LOCK PATH, not of its
// claim. If the process pauses after its link(2) succeeded and before that
// open, its lock can be broken and taken by B meanwhile; it then writes
// now + ITS lifetime onto B's lock file. The comment says this "lengthens
// that lock, never shortens it", but lifetimes are per Lock: with a shorter
// lifetime than B's it shortens B's lock, and a third process D breaks B's
// lock while B's lease still runs: two holders within their leases.
func TestReviewLinkedRetimesAnotherHoldersLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := newStepClock()

	fsA := fsystest.NoIdentityFS(fsys.OS)
	fsB := fsystest.NoIdentityFS(fsys.OS)
	fsD := fsystest.NoIdentityFS(fsys.OS)
	a := reviewLock(t, path, clock, fsA, WithLifetime(2*time.Second))
	b := reviewLock(t, path, clock, fsB, WithLifetime(60*time.Second))
	d := reviewLock(t, path, clock, fsD, WithLifetime(60*time.Second))

	paused := false
	fsA.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == path && err == nil && !paused {
			paused = true
			// A is held back right after its link, past its lifetime and
			// the slop. B breaks A's expired lock and takes it, with a
			// 60 s lifetime. (The code reviewed opened the lock path next
			// and set the times through that descriptor.) And the second
			// or two that B waits out of a whole-second expiry (cutBy).
			clock.Advance(2*time.Second + 10*time.Second + 3*time.Second)
			held, err := b.TryAcquire()
			if err != nil || !held {
				t.Fatalf("B.TryAcquire = %v, %v; want true", held, err)
			}
		}
		return err
	}
	if held, err := a.TryAcquire(); err != nil || held {
		t.Fatalf("A.TryAcquire = %v, %v; want false, nil (its lock was taken while it paused)", held, err)
	}
	if !paused {
		t.Fatal("the pause was not staged")
	}
	bExpiry, _, _, _ := b.acq.state()
	onDisk := mtimeOf(t, path)
	t.Logf("B's lease ends %v; the lock file's expiry on disk is now %v", bExpiry, onDisk)
	if onDisk.Before(bExpiry) {
		t.Errorf("A re-timed B's lock file: expiry %v on disk, B counts on %v", onDisk, bExpiry)
	}

	// Just past the shortened expiry and the slop, well within B's lease.
	clock.Advance(2*time.Second + 10*time.Second + time.Second)
	held, err := d.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	bExpiry, _, _, _ = b.acq.state()
	if held && now.Before(bExpiry) {
		ok, err := b.IsLocked()
		t.Errorf("two holders within their leases: D acquired at %v while B's lease runs until %v (B.IsLocked = %v, %v)", now, bExpiry, ok, err)
	}
}

// Attack: a break that moves a lock file it should not have, with no pause
// at all. A flufl.lock (Python) holder whose lock has expired unlocks
// (is_locked touches its claim, then it unlinks L) after a Go breaker B
// rechecked the expired instance and before B renames L aside. A (Go)
// takes the free lock at once and verifies it. B moves A's fresh lock aside,
// sees it is not what it judged, and tries to put it back; in that window
// C (Go) takes the lock. B's no-replace restore fails and B deletes A's
// lock file: A and C both hold the lock within their leases. The doc
// describes this window only for a process paused longer than the slop.
func TestReviewBreakMovesFreshLockWithoutPause(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := newStepClock()

	// The Python holder: flufl.lock's files, written as flufl.lock does.
	pyClaim := path + "|pyhost|4242|7308917433465018353"
	if err := os.WriteFile(pyClaim, []byte(pyClaim), 0o644); err != nil {
		t.Fatal(err)
	}
	pyExpiry := clock.Now().Add(15 * time.Second)
	if err := os.Chtimes(pyClaim, pyExpiry, pyExpiry); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(pyClaim, path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(15*time.Second + 10*time.Second + 3*time.Second) // expired in everyone's eyes, a whole second's cut (cutBy) too

	fsB := &fsystest.Faulty{FS: fsys.OS}
	a := reviewLock(t, path, clock, fsys.OS)
	b := reviewLock(t, path, clock, fsB)
	c := reviewLock(t, path, clock, fsys.OS)

	// A and C run concurrently with B, as processes do: each starts when
	// the hook says, and the hook goes on once its link has happened
	// (after which, in the protocol reviewed, it held the lock at once).
	var aHeld, cHeld bool
	var wg sync.WaitGroup
	start := func(l *Lock, held *bool, fsx *fsystest.Faulty) {
		linked := make(chan struct{})
		var once sync.Once
		fsx.OnLink = func(next func(string, string) error, o, n string) error {
			err := next(o, n)
			if n == path {
				once.Do(func() { close(linked) })
			}
			return err
		}
		wg.Go(func() {
			var err error
			if *held, err = l.TryAcquire(); err != nil {
				t.Errorf("TryAcquire = %v", err)
			}
			once.Do(func() { close(linked) })
		})
		<-linked
	}
	fsA, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	a = reviewLock(t, path, clock, fsA)
	c = reviewLock(t, path, clock, fsC)
	staged := false
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !staged {
			staged = true
			// Python's unlock(): is_locked touches the claim, sees
			// nlink 2 and its contents, then unlinks L and the claim.
			late := clock.Now().Add(15 * time.Second)
			os.Chtimes(pyClaim, late, late)
			os.Remove(path)
			os.Remove(pyClaim)
			start(a, &aHeld, fsA)
		}
		return next(o, n)
	}
	restoring := false
	fsB.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == path && !restoring {
			restoring = true
			start(c, &cHeld, fsC)
		}
		return next(o, n)
	}
	if _, err := b.Break(false); err != nil {
		t.Logf("B.Break: %v", err)
	}
	if !staged {
		t.Fatal("the interleaving was not staged")
	}
	// Let the waiters' clocks run until both are done.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-clock.made:
			clock.Advance(100 * time.Millisecond)
		}
	}
	aExpiry, _, _, _ := a.acq.state()
	cExpiry, _, _, _ := c.acq.state()
	now := clock.Now()
	if aHeld && cHeld && now.Before(aExpiry) && now.Before(cExpiry) {
		ok, err := a.IsLocked()
		t.Errorf("two holders within their leases at %v: A (lease to %v) and C (lease to %v); A.IsLocked = %v, %v", now, aExpiry, cExpiry, ok, err)
	}
	_ = errors.Is
}

// The same attack on real sshfs: A on mount a, B on mount b (two clients
// of one directory), D on mount a. Nothing is faked but the pause and the
// clock.
func TestReviewLinkedRetimesAnotherHoldersLockSSHFS(t *testing.T) {
	dirA, dirB := testenv.SSHFS(t)
	clock := newStepClock()
	pathA, pathB := filepath.Join(dirA, "app.lck"), filepath.Join(dirB, "app.lck")
	fsA := &fsystest.Faulty{FS: fsys.OS}
	a := reviewLock(t, pathA, clock, fsA, WithLifetime(2*time.Second))
	b := reviewLock(t, pathB, clock, fsys.OS, WithLifetime(60*time.Second))
	d := reviewLock(t, pathA, clock, fsys.OS, WithLifetime(60*time.Second))

	// A has taken and released the lock once before, so it knows that
	// this filesystem reports no identity (a Lock reused, as by guard's
	// callers, or a long-lived Lock in a service).
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	paused := false
	fsA.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == pathA && err == nil && !paused {
			// A is held back right after its link (in the code reviewed,
			// before it opened the lock path to set the times).
			paused = true
			// Past A's lifetime and the slop, and the second or two
			// that B waits out where its mount shows whole seconds.
			clock.Advance(2*time.Second + 10*time.Second + 3*time.Second)
			held, err := b.TryAcquire()
			if err != nil || !held {
				t.Fatalf("B.TryAcquire = %v, %v; want true", held, err)
			}
		}
		return err
	}
	if held, err := a.TryAcquire(); err != nil || held {
		t.Fatalf("A.TryAcquire = %v, %v; want false, nil", held, err)
	}
	if !paused {
		t.Fatal("the pause was not staged")
	}
	bExpiry, _, _, _ := b.acq.state()
	// Read through B's client, which wrote last: A's client caches the
	// attributes of pathA for up to 20 s.
	onDisk := mtimeOf(t, pathB)
	t.Logf("ident A=%v B=%v; B's lease ends %v; on disk %v", a.ident, b.ident, bExpiry, onDisk)
	if onDisk.Before(bExpiry.Truncate(time.Second)) {
		t.Errorf("A re-timed B's lock file: expiry %v on disk, B counts on %v", onDisk, bExpiry)
	}
	clock.Advance(2*time.Second + 10*time.Second + 2*time.Second)
	held, err := d.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if held && now.Before(bExpiry) {
		ok, err := b.IsLocked()
		t.Errorf("two holders within their leases: D acquired at %v while B's lease runs until %v (B.IsLocked = %v, %v)", now, bExpiry, ok, err)
	}
}
