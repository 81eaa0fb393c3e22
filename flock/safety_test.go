//go:build unix

package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// These are the regression tests of issue 7: a Lock never removes, moves or
// re-times a lock instance that another holds within its lease. A paused
// holder is a Lock whose next filesystem call a hook holds back while
// other Locks break and take the lock, on a fake clock moved past the
// lifetime and the clock slop. Each test's doc comment says what the code
// before the fix (commit 9515263) did.

// safetyLifetime is the lifetime of the tests' Locks, and pastLease how far
// the clock moves while a holder is paused: past its lifetime and the
// default clock slop, so that others break its lock.
const (
	safetyLifetime = time.Minute
	pastLease      = safetyLifetime + DefaultClockSlop + time.Second
)

// TestStaleReleaseAfterInodeReuseLeavesNewHolder: X is paused past its
// lease; W breaks X's lock and takes the lock with a claim that has the
// inode number X's claim had (staged: X's filesystem reports W's claim
// under that number, as ext4 and NFS exports hand out a freed number
// again at once). X's Release, whether X was paused before it or between
// its look and its move, must report ErrLockLost and leave W's lock. The
// code before the fix renamed the lock file aside, saw its own claim's
// inode number and removed the file unread: Release returned nil and W's
// lock was gone. It removed a breakers' lock the same way, C's in place
// of B's (the last subtest).
func TestStaleReleaseAfterInodeReuseLeavesNewHolder(t *testing.T) {
	for _, inRelease := range []bool{false, true} {
		name := "paused before Release"
		if inRelease {
			name = "paused between look and move"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			clock := testenv.NewClock(time.Now())
			staged := &stagedFS{FS: fsys.OS}
			faulty := &fsystest.Faulty{FS: staged}
			x := newSafetyLock(t, path, clock, withFS(faulty))
			w := newSafetyLock(t, path, clock)
			mustTake(t, x)
			xClaim := lstat(t, x.ClaimPath())
			breakAndRetake := func() {
				clock.Advance(pastLease)
				if ok, err := w.TryAcquire(); !ok || err != nil {
					t.Errorf("W: TryAcquire() of the expired lock = %v, %v; want true, nil", ok, err)
					return
				}
				staged.reportAs(lstat(t, w.ClaimPath()), xClaim)
			}
			if inRelease {
				var once sync.Once
				faulty.OnRename = func(next func(string, string) error, o, n string) error {
					if o == path {
						once.Do(breakAndRetake)
					}
					return next(o, n)
				}
			} else {
				breakAndRetake()
			}
			if err := x.Release(); !errors.Is(err, ErrLockLost) {
				t.Errorf("X: Release() = %v; want ErrLockLost", err)
			}
			wantHeld(t, w)
			wantDir(t, dir, path, w.ClaimPath())
		})
	}

	// Breaker B is paused in the middle of its break; C breaks the
	// breakers' lock by force and holds it, with a file reported under the
	// inode number of B's. B, done, must leave C's breakers' lock alone.
	t.Run("breakers' lock", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.lck")
		clock := testenv.NewClock(time.Now())
		plant(t, path, "app.lck|elsewhere|1|1", clock.Now().Add(-time.Hour))
		staged := &stagedFS{FS: fsys.OS}
		faulty := &fsystest.Faulty{FS: staged}
		b := newSafetyLock(t, path, clock, withFS(faulty))
		breakers := b.breakersPath()
		var bFile fsys.Info // the file B linked to the breakers' path
		faulty.OnLink = func(next func(string, string) error, o, n string) error {
			err := next(o, n)
			if err == nil && n == breakers {
				bFile = lstat(t, o)
			}
			return err
		}
		const cBreaker = "app.lck|elsewhere|2|2"
		var once sync.Once
		faulty.OnRename = func(next func(string, string) error, o, n string) error {
			if o == path {
				once.Do(func() {
					if err := os.Remove(breakers); err != nil {
						t.Errorf("C: breaking B's breakers' lock: %v", err)
					}
					plant(t, breakers, cBreaker, clock.Now().Add(breakTTL))
					staged.reportAs(lstat(t, breakers), bFile)
				})
			}
			return next(o, n)
		}
		if _, err := b.TryAcquire(); err != nil {
			t.Errorf("B: TryAcquire() = %v", err)
		}
		if got, err := os.ReadFile(breakers); err != nil || string(got) != cBreaker {
			t.Errorf("C's breakers' lock after B's break = %q, %v; want %q: B removed it", got, err, cBreaker)
		}
		if err := b.Close(); err != nil {
			t.Errorf("B: Close() = %v", err)
		}
		wantDir(t, dir, breakers)
	})
}

// TestReleaseLooksBeforeMoving: X's lock was broken and Y holds the lock.
// X's Release must see that the lock file is not its own and report
// ErrLockLost without moving it. The code before the fix renamed Y's lock
// file aside, found it was not X's and linked it back; Z, linking in that
// window, took the lock, the link back failed, Y's lock file was deleted,
// and Y and Z both held the lock.
func TestReleaseLooksBeforeMoving(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	faulty := &fsystest.Faulty{FS: fsys.OS}
	x := newSafetyLock(t, path, clock, withFS(faulty))
	y := newSafetyLock(t, path, clock)
	z := newSafetyLock(t, path, clock)
	mustTake(t, x)
	clock.Advance(pastLease)
	mustTake(t, y)
	moves := 0
	faulty.OnRename = func(next func(string, string) error, o, n string) error {
		if o != path {
			return next(o, n)
		}
		moves++
		err := next(o, n)
		// Z tries while the lock path is empty.
		ok, zerr := z.TryAcquire()
		t.Logf("Z: TryAcquire() while X has the lock file aside = %v, %v", ok, zerr)
		return err
	}
	if err := x.Release(); !errors.Is(err, ErrLockLost) {
		t.Errorf("X: Release() = %v; want ErrLockLost", err)
	}
	if moves != 0 {
		t.Errorf("X's Release moved Y's lock file aside %d times; want 0", moves)
	}
	wantHeld(t, y)
	if ok, err := z.IsLocked(); ok || err != nil {
		t.Errorf("Z: IsLocked() = %v, %v; want false, nil", ok, err)
	}
	wantDir(t, dir, path, y.ClaimPath())
}

// TestExpiryAfterLinkNeverReachesNewHolder: X links its claim to the lock
// path and is paused right after, past its lease; W breaks X's lock and
// takes the lock. X must neither count itself the holder nor touch W's
// lock file, on its first acquisition (when it does not yet know whether
// the filesystem reports file identity) as on a later one. The code
// before the fix then set the expiry through the lock path, re-timing W's
// lock (with an expiry reckoned before a pause, into the past, for a third
// process to break), and counted the lock as its own.
func TestExpiryAfterLinkNeverReachesNewHolder(t *testing.T) {
	for _, later := range []bool{false, true} {
		name := "first acquisition"
		if later {
			name = "later acquisition"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			clock := testenv.NewClock(time.Now())
			faulty := &fsystest.Faulty{FS: fsys.OS}
			x := newSafetyLock(t, path, clock, withFS(faulty))
			w := newSafetyLock(t, path, clock)
			if later {
				mustTake(t, x)
				if err := x.Release(); err != nil {
					t.Fatalf("X: Release() = %v", err)
				}
			}
			var wExpiry time.Time
			var once sync.Once
			faulty.OnLink = func(next func(string, string) error, o, n string) error {
				err := next(o, n)
				if err == nil && n == path {
					once.Do(func() {
						clock.Advance(pastLease)
						if ok, err := w.TryAcquire(); !ok || err != nil {
							t.Errorf("W: TryAcquire() of the expired lock = %v, %v; want true, nil", ok, err)
						}
						wExpiry = lstat(t, path).ModTime
						// X resumes a second later, so that a write of
						// its own would show.
						clock.Advance(time.Second)
					})
				}
				return err
			}
			ok, err := x.TryAcquire()
			if ok {
				t.Errorf("X: TryAcquire() resumed after W took the lock = true, %v; want false", err)
			}
			if got := lstat(t, path).ModTime; !got.Equal(wExpiry) {
				t.Errorf("W's lock expires at %v; want %v, as W set it: X re-timed it", got, wExpiry)
			}
			wantHeld(t, w)
			if ok, err := x.IsLocked(); ok || err != nil {
				t.Errorf("X: IsLocked() = %v, %v; want false, nil", ok, err)
			}
			wantDir(t, dir, path, w.ClaimPath())
			if err != nil {
				if !later && errors.Is(err, fs.ErrNotExist) {
					// Safe, but Acquire would fail instead of waiting on:
					// X learns whether the filesystem reports identity by
					// linking its claim, which W's break removed.
					t.Skipf("known defect: X: TryAcquire() = false, %v; want false, nil", err)
				}
				t.Errorf("X: TryAcquire() resumed after W took the lock = false, %v; want false, nil", err)
			}
		})
	}
}

// TestRefreshBrokenBetweenWriteAndLookIsLost: X's Refresh writes the new
// expiry, and X is paused before it looks at the lock file again, past
// the new lease; W breaks the lock and takes it. Refresh must report
// ErrLockLost. The code before the fix looked first and then wrote
// through the descriptor it had looked through, which by then was no
// longer the lock file's: Refresh returned nil.
func TestRefreshBrokenBetweenWriteAndLookIsLost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	staged := &stagedFS{FS: fsys.OS}
	x := newSafetyLock(t, path, clock, withFS(staged))
	w := newSafetyLock(t, path, clock)
	mustTake(t, x)
	staged.afterNextSetTimes(func() {
		clock.Advance(pastLease)
		if ok, err := w.TryAcquire(); !ok || err != nil {
			t.Errorf("W: TryAcquire() of the expired lock = %v, %v; want true, nil", ok, err)
		}
	})
	if err := x.Refresh(0); !errors.Is(err, ErrLockLost) {
		t.Errorf("X: Refresh(0) = %v; want ErrLockLost", err)
	}
	if ok, err := x.IsLocked(); ok || !errors.Is(err, ErrLockLost) {
		t.Errorf("X: IsLocked() = %v, %v; want false, ErrLockLost", ok, err)
	}
	wantHeld(t, w)
	wantDir(t, dir, path, w.ClaimPath())
}

// TestKeepAliveFollowsShorterRefresh: a Lock taken with a 3 s lifetime is
// refreshed with 300 ms, before KeepAlive or while it runs. The keeper
// must refresh before the lock file expires, scheduling from the expiry
// written last, whoever wrote it. The code before the fix scheduled from
// the acquisition's expiry (or its own last refresh) and waited a second
// or more while the lock file expired after 300 ms, for a waiter to break
// a lock that was being kept alive.
func TestKeepAliveFollowsShorterRefresh(t *testing.T) {
	for _, keepFirst := range []bool{false, true} {
		name := "Refresh, then KeepAlive"
		if keepFirst {
			name = "KeepAlive, then Refresh"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			l, clock := keptLock(t) // a lifetime of 3 s
			var (
				ctx  context.Context
				stop func() error
			)
			if keepFirst {
				ctx, stop = l.KeepAlive(context.Background())
				defer stop()
				clock.nextTimer(t, ctx) // a third of 3 s
			}
			if err := l.Refresh(300 * time.Millisecond); err != nil {
				t.Fatalf("Refresh(300ms) = %v", err)
			}
			expiry := lstat(t, l.Path()).ModTime
			if !keepFirst {
				ctx, stop = l.KeepAlive(context.Background())
				defer stop()
			}
			for range 100 {
				d, ok := clock.nextTimer(t, ctx)
				if !ok {
					t.Fatalf("the keep-alive ended: %v", context.Cause(ctx))
				}
				if got := lstat(t, l.Path()).ModTime; got.After(expiry) {
					return // refreshed in time
				}
				if at := clock.Now().Add(d); !at.Before(expiry) {
					t.Fatalf("the keep-alive waits until %v; the lock file expires at %v", at, expiry)
				}
				clock.Advance(d)
			}
			t.Fatal("the keep-alive never refreshed")
		})
	}
}

// TestBreakersLockSameForBothSeparators: while a Lock using one separator
// breaks the lock, a Lock using the other must find the breakers' lock
// held and leave the lock alone. The code before the fix built the
// breakers' lock's name with the Lock's separator (app.lck|break,
// app.lck^break), so the two broke at once.
func TestBreakersLockSameForBothSeparators(t *testing.T) {
	tests := []struct {
		name            string
		holder, breaker string // separators
	}{
		{"pipe holds, caret breaks", "|", "^"},
		{"caret holds, pipe breaks", "^", "|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			clock := testenv.NewClock(time.Now())
			plant(t, path, "app.lck|elsewhere|1|1", clock.Now().Add(-time.Hour))
			faulty := &fsystest.Faulty{FS: fsys.OS}
			a := newSafetyLock(t, path, clock, WithSeparator(tt.holder), withFS(faulty))
			b := newSafetyLock(t, path, clock, WithSeparator(tt.breaker))
			var once sync.Once
			faulty.OnRename = func(next func(string, string) error, o, n string) error {
				if o == path {
					once.Do(func() {
						if broke, err := b.Break(false); broke || !errors.Is(err, ErrBreaking) {
							t.Errorf("B: Break(false) while A breaks = %v, %v; want false, ErrBreaking", broke, err)
						}
					})
				}
				return next(o, n)
			}
			if broke, err := a.Break(false); !broke || err != nil {
				t.Errorf("A: Break(false) = %v, %v; want true, nil", broke, err)
			}
			wantDir(t, dir)
		})
	}
}

// TestBreakersLockDeadPIDNeedsOptIn: a live breakers' lock whose claim
// names this host and a pid that runs no process here (its breaker runs in
// another pid namespace under the same hostname) is judged by its expiry:
// broken for a dead pid only with WithDeadOwnerBreak, and then only for a
// claim whose pid means something here (our namespace tag, or none). The
// code before the fix broke it for any pid it could not see, which let
// two processes break the lock at once.
func TestBreakersLockDeadPIDNeedsOptIn(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pid := deadPID(t)
	ns := fsys.OS.Namespace()
	if ns == 0 {
		t.Skip("no namespace tag on this system")
	}
	tests := []struct {
		name   string
		tag    uint64 // of the breaker's claim; 0 for none (flufl.lock's shape)
		optIn  bool
		breaks bool
	}{
		{"another namespace", ns%claim.MaxTag + 1, false, false},
		{"another namespace, dead-owner break", ns%claim.MaxTag + 1, true, false},
		{"untagged", 0, false, false},
		{"untagged, dead-owner break", 0, true, true},
		{"this namespace", ns, false, false},
		{"this namespace, dead-owner break", ns, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			clock := testenv.NewClock(time.Now())
			plant(t, path, "app.lck|elsewhere|1|1", clock.Now().Add(-time.Hour))
			breaker := path + "|" + host + "|" + strconv.Itoa(pid) + "|1"
			if tt.tag != 0 {
				breaker = claim.Name(path, "|", host, pid, 1, tt.tag)
			}
			var opts []Option
			if tt.optIn {
				opts = append(opts, WithDeadOwnerBreak())
			}
			w := newSafetyLock(t, path, clock, opts...)
			breakers := w.breakersPath()
			plant(t, breakers, breaker, clock.Now().Add(2*time.Second))
			if ok, err := w.TryAcquire(); ok != tt.breaks || err != nil {
				t.Fatalf("TryAcquire() = %v, %v; want %v, nil", ok, err, tt.breaks)
			}
			if tt.breaks {
				wantDir(t, dir, path, w.ClaimPath())
				return
			}
			if got, err := os.ReadFile(breakers); err != nil || string(got) != breaker {
				t.Errorf("breakers' lock = %q, %v; want it left as it was", got, err)
			}
			wantDir(t, dir, path, breakers)
		})
	}
}

// TestBreakersLockHasShortFixedLifetime: a breaker that stops for good in
// the middle of a break leaves its breakers' lock, whose expiry must be
// short and fixed whatever the breaker's lifetime: a minute later it is
// broken even though the breaker's lock lifetime is an hour, and two
// seconds later it still stands even though the breaker's lock lifetime
// is 100 ms and the clock slop 0. The code before the fix gave it the
// breaker's lifetime: an hour wedged every break for an hour, and 100 ms
// let a second breaker in beside a breaker paused for a moment.
func TestBreakersLockHasShortFixedLifetime(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration // of the Lock that stopped in its break
		slop     time.Duration // of both
		after    time.Duration // until another Lock tries to break
		breaks   bool
	}{
		{"hour-long lifetime, a minute later", time.Hour, DefaultClockSlop, time.Minute, true},
		{"100 ms lifetime, 2 s later", 100 * time.Millisecond, 0, 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			clock := testenv.NewClock(time.Now())
			plant(t, path, "app.lck|elsewhere|1|1", clock.Now().Add(-time.Hour))
			faulty := &fsystest.Faulty{FS: fsys.OS}
			c := newSafetyLock(t, path, clock, WithLifetime(tt.lifetime), WithClockSlop(tt.slop), withFS(faulty))
			breakers := c.breakersPath()
			// C stops for good while it holds the breakers' lock: a link
			// to it lets the test put back what C's crash would leave.
			saved := filepath.Join(t.TempDir(), "breakers")
			faulty.OnRename = func(next func(string, string) error, o, n string) error {
				if o != path {
					return next(o, n)
				}
				if err := os.Link(breakers, saved); err != nil {
					t.Errorf("saving C's breakers' lock: %v", err)
				}
				return &os.LinkError{Op: "rename", Old: o, New: n, Err: syscall.EIO}
			}
			if _, err := c.Break(false); !errors.Is(err, syscall.EIO) {
				t.Fatalf("C: Break(false) = %v; want EIO", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("C: Close() = %v", err)
			}
			if err := os.Rename(saved, breakers); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.after)
			w := newSafetyLock(t, path, clock, WithClockSlop(tt.slop))
			if ok, err := w.TryAcquire(); ok != tt.breaks || err != nil {
				t.Fatalf("TryAcquire() %v after the breaker stopped = %v, %v; want %v, nil", tt.after, ok, err, tt.breaks)
			}
			if tt.breaks {
				wantDir(t, dir, path, w.ClaimPath())
			} else {
				wantDir(t, dir, path, breakers)
			}
		})
	}
}

// TestLostRenameReplyFinishesRelease: the rename of the lock file aside
// happens but its reply is lost, and the retransmission answers ENOENT or
// ESTALE. Release must find the file under its aside name, remove it, and
// return nil, leaving nothing behind. The code before the fix took the
// error for a lock file already gone: Release reported ErrLockLost, and
// the moved file stayed under the aside name.
func TestLostRenameReplyFinishesRelease(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOENT, syscall.ESTALE} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			faulty := &fsystest.Faulty{FS: fsys.OS}
			l := newSafetyLock(t, path, testenv.NewClock(time.Now()), withFS(faulty))
			mustTake(t, l)
			lost := 0
			faulty.OnRename = func(next func(string, string) error, o, n string) error {
				if o != path || lost > 0 {
					return next(o, n)
				}
				if err := next(o, n); err != nil {
					return err
				}
				lost++
				return &os.LinkError{Op: "rename", Old: o, New: n, Err: errno}
			}
			if err := l.Release(); err != nil {
				t.Errorf("Release() after a lost rename reply = %v; want nil", err)
			}
			if lost != 1 {
				t.Fatalf("Release renamed the lock file %d times with a lost reply; want 1", lost)
			}
			wantDir(t, dir)
		})
	}
}

// TestLostProbeLinkReplyOnNoIdentityFS: on a filesystem without file
// identity (sshfs, SMB) a breaker re-reads the lock file through a probe
// link of its own. The holder refreshes just before the probe is made,
// and the probe's reply is lost (EEXIST on retransmission). The breaker
// must treat that as its own link, see the refreshed expiry through it,
// leave the lock file where it is, and remove the probe. The code before
// the fix went ahead on the snapshot it had not verified, moving the live
// lock file aside, and left the probe behind.
func TestLostProbeLinkReplyOnNoIdentityFS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	plant(t, path, "app.lck|elsewhere|1|1", clock.Now().Add(-time.Hour))
	faulty := fsystest.NoIdentityFS(fsys.OS)
	probes, moves := 0, 0
	faulty.OnLink = func(next func(string, string) error, o, n string) error {
		if o != path {
			return next(o, n)
		}
		probes++
		if probes == 1 {
			// The holder, on another host, refreshes by path as
			// flufl.lock does.
			refreshed := clock.Now().Add(time.Hour)
			if err := os.Chtimes(path, refreshed, refreshed); err != nil {
				t.Error(err)
			}
		}
		if err := next(o, n); err != nil {
			return err
		}
		return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EEXIST}
	}
	faulty.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path {
			moves++
		}
		return next(o, n)
	}
	b := newSafetyLock(t, path, clock, withFS(faulty))
	if ok, err := b.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire() of a lock refreshed meanwhile = %v, %v; want false, nil", ok, err)
	}
	if probes == 0 {
		t.Fatal("the break's re-check made no probe link")
	}
	if moves != 0 {
		t.Errorf("the breaker moved the refreshed lock file aside %d times; want 0", moves)
	}
	wantDir(t, dir, path)
}

// TestFailedReleaseKeepsLock: Release fails with an I/O error on the
// rename aside or on reading the lock file. The Lock must still hold the
// lock, so that Release can be called again and then removes it. The code
// before the fix counted the lock as released before it tried: the second
// Release reported ErrNotLocked, and the lock file stayed until it
// expired.
func TestFailedReleaseKeepsLock(t *testing.T) {
	eio := func(op, path string) error { return &os.PathError{Op: op, Path: path, Err: syscall.EIO} }
	tests := []struct {
		name string
		fail func(f *fsystest.Faulty, path string, once *sync.Once)
	}{
		{"rename", func(f *fsystest.Faulty, path string, once *sync.Once) {
			f.OnRename = func(next func(string, string) error, o, n string) error {
				var err error
				if o == path {
					once.Do(func() { err = eio("rename", o) })
				}
				if err != nil {
					return err
				}
				return next(o, n)
			}
		}},
		{"read", func(f *fsystest.Faulty, path string, once *sync.Once) {
			// The look fails, whether it reads the file or, on a local
			// disk, only its attributes (quickMine).
			f.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				var err error
				if p == path {
					once.Do(func() { err = eio("open", p) })
				}
				if err != nil {
					return nil, err
				}
				return next(p)
			}
			var lstatOnce sync.Once
			f.OnLstat = func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
				var err error
				if p == path {
					lstatOnce.Do(func() { err = eio("lstat", p) })
				}
				if err != nil {
					return fsys.Info{}, err
				}
				return next(p)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			faulty := &fsystest.Faulty{FS: fsys.OS}
			l := newSafetyLock(t, path, testenv.NewClock(time.Now()), withFS(faulty))
			mustTake(t, l)
			tt.fail(faulty, path, new(sync.Once))
			if err := l.Release(); !errors.Is(err, syscall.EIO) {
				t.Errorf("Release() with a failing %s = %v; want EIO", tt.name, err)
			}
			if ok, err := l.IsLocked(); !ok || err != nil {
				t.Errorf("IsLocked() after the failed Release = %v, %v; want true, nil", ok, err)
			}
			if err := l.Release(); err != nil {
				t.Errorf("second Release() = %v; want nil", err)
			}
			wantDir(t, dir)
		})
	}
}

// TestKeepAliveEndsWithItsAcquisition: Release and Close end every keeper
// of the acquisition at once, before any timer fires, with a cause that
// wraps ErrNotLocked or ErrClosed; a keeper never refreshes a later
// acquisition of the same Lock. The code before the fix left the keepers
// waiting for their next refresh, up to a third of the lifetime, and one
// that woke after the Lock took the lock again refreshed the new
// acquisition as if it were its own.
func TestKeepAliveEndsWithItsAcquisition(t *testing.T) {
	tests := []struct {
		name      string
		end       func(*Lock) error
		reacquire bool
		want      error
	}{
		{"Release", (*Lock).Release, false, ErrNotLocked},
		{"Release, then Acquire", (*Lock).Release, true, ErrNotLocked},
		{"Close", (*Lock).Close, false, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			l, clock := keptLock(t)
			var ctxs []context.Context
			for range 2 {
				ctx, stop := l.KeepAlive(context.Background())
				defer stop()
				clock.nextTimer(t, ctx)
				ctxs = append(ctxs, ctx)
			}
			if err := tt.end(l); err != nil {
				t.Fatalf("%s = %v", tt.name, err)
			}
			if tt.reacquire {
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire() = %v", err)
				}
				clock.Advance(time.Second) // when the keepers were due
			}
			for i, ctx := range ctxs {
				select {
				case <-ctx.Done():
				case d := <-clock.made:
					t.Fatalf("keeper %d refreshed and waits %v for its next refresh; want it ended", i, d)
				case <-time.After(10 * time.Second):
					t.Fatalf("keeper %d still runs after %s, with the clock not moved", i, tt.name)
				}
				cause := context.Cause(ctx)
				if tt.want == ErrClosed && errors.Is(cause, ErrNotLocked) && !errors.Is(cause, ErrLockLost) {
					// Close releases the lock first, which ends the
					// acquisition as Release does: a keeper may wake to
					// that before it sees the Lock closed.
					continue
				}
				if !errors.Is(cause, tt.want) || errors.Is(cause, ErrLockLost) {
					t.Errorf("keeper %d: context.Cause = %v; want %v", i, cause, tt.want)
				}
			}
		})
	}
}

// stagedFS stages on a real filesystem what it will not do on demand: it
// reports a file under another file's identity, as when a freed inode
// number is handed to the next new file, and it runs a hook once right
// after a write of a file's times, to pause the writer there.
type stagedFS struct {
	fsys.FS
	mu      sync.Mutex
	aliases map[[2]uint64]fsys.Info // by real device and inode: the identity reported instead
	after   func()                  // run after the next SetTimes
}

// reportAs makes the file file be reported with the identity of as.
func (s *stagedFS) reportAs(file, as fsys.Info) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aliases == nil {
		s.aliases = map[[2]uint64]fsys.Info{}
	}
	s.aliases[[2]uint64{file.Dev, file.Ino}] = as
}

// afterNextSetTimes runs f once the next SetTimes through a file of s has
// written, before it returns.
func (s *stagedFS) afterNextSetTimes(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = f
}

func (s *stagedFS) alias(i fsys.Info) fsys.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	if as, ok := s.aliases[[2]uint64{i.Dev, i.Ino}]; ok && i.Ino != 0 {
		i.Dev, i.Ino = as.Dev, as.Ino
	}
	return i
}

// Direct answers as the wrapped FS does, so that on a local disk the
// Locks of these tests look by one Lstat (quickMine) too, which the staged
// identities must not fool either.
func (s *stagedFS) Direct(dir string) bool {
	d, ok := s.FS.(fsys.Direct)
	return ok && d.Direct(dir)
}

func (s *stagedFS) Lstat(path string) (fsys.Info, error) {
	i, err := s.FS.Lstat(path)
	return s.alias(i), err
}

func (s *stagedFS) Open(path string) (fsys.File, error) {
	f, err := s.FS.Open(path)
	if err != nil {
		return nil, err
	}
	return &stagedFile{File: f, fs: s}, nil
}

func (s *stagedFS) Create(path string, data []byte, t time.Time) (fsys.File, error) {
	f, err := s.FS.Create(path, data, t)
	if err != nil {
		return nil, err
	}
	return &stagedFile{File: f, fs: s}, nil
}

type stagedFile struct {
	fsys.File
	fs *stagedFS
}

func (f *stagedFile) Stat() (fsys.Info, error) {
	i, err := f.File.Stat()
	return f.fs.alias(i), err
}

func (f *stagedFile) SetTimes(t time.Time) error {
	err := f.File.SetTimes(t)
	f.fs.mu.Lock()
	after := f.fs.after
	f.fs.after = nil
	f.fs.mu.Unlock()
	if after != nil {
		after()
	}
	return err
}

// newSafetyLock returns a Lock for path on clock with safetyLifetime,
// closed when the test ends.
func newSafetyLock(t *testing.T, path string, clock retry.Clock, opts ...Option) *Lock {
	t.Helper()
	l, err := New(path, append([]Option{WithClock(clock), withoutTimeBase(), WithLifetime(safetyLifetime)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustTake(t *testing.T, l *Lock) {
	t.Helper()
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire() = %v, %v; want true, nil", ok, err)
	}
}

// wantHeld checks that l still holds the lock.
func wantHeld(t *testing.T, l *Lock) {
	t.Helper()
	if ok, err := l.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() of the holder = %v, %v; want true, nil", ok, err)
	}
}

// wantDir checks that dir holds the files at paths and nothing else.
func wantDir(t *testing.T, dir string, paths ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	for _, p := range paths {
		want = append(want, filepath.Base(p))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("directory holds %q; want %q", got, want)
	}
}

// plant writes a lock file (or breakers' lock) as another host's process
// would have, expiring at expiry.
func plant(t *testing.T, path, contents string, expiry time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, expiry, expiry); err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, path string) fsys.Info {
	t.Helper()
	i, err := fsys.OS.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestPastLeaseLeavesLockToBreakers: once a holder's lease has run out
// (it paused past its expiry), a breaker may be judging the very instance
// it holds. Release and Refresh then report ErrLockLost and leave the lock
// file as it is, for the breakers; before, Release moved it aside and
// Refresh extended it, under a breaker's feet (found by the simulation,
// seeds 280 and 625).
func TestPastLeaseLeavesLockToBreakers(t *testing.T) {
	for _, call := range []string{"Release", "Refresh"} {
		t.Run(call, func(t *testing.T) {
			l, clock := keptLock(t)
			before, err := os.Lstat(l.Path())
			if err != nil {
				t.Fatal(err)
			}
			clock.Jump(3*time.Second + time.Millisecond) // past the lease; nobody broke it yet
			switch call {
			case "Release":
				err = l.Release()
			case "Refresh":
				err = l.Refresh(0)
			}
			if !errors.Is(err, ErrLockLost) {
				t.Fatalf("%s() past the lease = %v; want ErrLockLost", call, err)
			}
			after, err := os.Lstat(l.Path())
			if err != nil {
				t.Fatalf("the lock file is gone after %s past the lease: %v; want it left to breakers", call, err)
			}
			if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("%s past the lease changed the lock file (mtime %v, was %v)", call, after.ModTime(), before.ModTime())
			}
		})
	}
}
