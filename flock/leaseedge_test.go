//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestKeepAliveEarlyLossStaysLost: the host's wall clock runs
// 2 min fast (expiries are written from the later of the filesystem's
// clock and the host's, fsNow). A refresh stalls (a network filesystem
// that stopped answering); the lease ends by the Lock's clocks and the
// keeper cancels KeepAlive's context with an ErrLockLost cause
// (keeper.refresh). NTP then steps the wall clock back, and the stalled
// refresh returns: by then the lease is not over, so it succeeds. The
// keeper goes on (err == nil), next sees its own context cancelled and
// returns as if ctx had ended it, without end: stop() returns nil although
// the context's cause says ErrLockLost, and the Lock still holds the lock,
// unrefreshed. KeepAlive's doc says stop returns that cause; guard
// (WithLock) relies on stop() to report the loss after fn returns.
// (Found by the review of the keep-alive's early loss.) Now the keeper
// ends with the cause it gave, and the Lock gives the lock up.
func TestKeepAliveEarlyLossStaysLost(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := &stepRunClock{start: time.Now()}
	clk.wall.Store(int64(2 * time.Minute)) // the host's clock runs fast
	st, fs := stallingFS(t)
	const life = 1500 * time.Millisecond
	h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	st.on.Store(true)
	select {
	case <-st.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5 s")
	}
	select {
	case <-kctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive's context not cancelled while the refresh stalled past the lease")
	}
	cause := context.Cause(kctx)
	t.Logf("context cancelled while the refresh stalled: %v", cause)
	clk.wall.Store(0) // NTP steps the host's clock back to the right time
	st.free()
	err := stop()
	if errors.Is(cause, ErrLockLost) && !errors.Is(err, ErrLockLost) {
		held, ierr := h.IsLocked()
		t.Errorf("KeepAlive's context was cancelled with %v, but stop() = %v (the keeper took its own early cancel for ctx ending it); the Lock still holds the lock (IsLocked = %v, %v) and no longer refreshes it", cause, err, held, ierr)
	}
	if rerr := h.Release(); rerr == nil && errors.Is(cause, ErrLockLost) {
		t.Logf("Release() = nil after KeepAlive reported the lock lost")
	}
}

// TestWholeSecondStampIsNotACut: noteCut takes any stored expiry
// without a fraction of a second to mean that the filesystem cuts times to
// the second, and from then on expiryIn rounds every expiry up to the next
// second: leases up to a second longer than the lifetime (a 1 s lifetime
// gives up to 2 s; a 100 ms one, nfsflock's least, up to 1.1 s), which
// every other process waits out, plus the slop, before it breaks a lock
// left by a crash.
//
//   - "nanoseconds": on a filesystem that keeps nanoseconds (the test's
//     temporary directory) an expiry that falls on a whole second is
//     stored exactly as written, and setExpiry calls noteCut whenever the
//     stored time is not after the written one, equality included. On a
//     real clock that happens once in 10^9 writes (10^7 on Windows' 100 ns
//     times), and lasts for the Lock's life.
//   - "10ms": on a filesystem of 10 ms times (Linux's exfat), an expiry
//     whose fraction is below 10 ms is stored with none: once in 100
//     writes.
//
// The test's clock starts on a second to make it happen on demand.
// Now only a cut of at least 50 ms of a fraction counts.
func TestWholeSecondStampIsNotACut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fs    fsys.FS
		start time.Duration
	}{
		{"nanoseconds", fsys.OS, 0},
		{"10ms", grainFS(10 * time.Millisecond), 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newStepClock() // 2030-01-01 00:00:00
			clock.Advance(tc.start)
			path := filepath.Join(t.TempDir(), "app.lck")
			const life = time.Second
			l := newLock(t, path, WithClock(clock), withoutTimeBase(), withFS(tc.fs), WithLifetime(life))
			if ok, err := l.TryAcquire(); !ok || err != nil {
				t.Fatalf("TryAcquire() = %v, %v", ok, err)
			}
			if err := l.Refresh(0); err != nil { // the expiry written: 00:00:01.000 or 00:00:01.005
				t.Fatal(err)
			}
			clock.Advance(300 * time.Millisecond)
			if err := l.Refresh(0); err != nil {
				t.Fatal(err)
			}
			expiry, _, _, _ := l.acq.state()
			if lease := expiry.Sub(clock.Now()); lease > life+10*time.Millisecond || l.cutTimes.Load() {
				t.Errorf("after one expiry stored without a fraction of a second, the Lock takes times to be cut to the second (cutTimes = %v), and a refresh with lifetime %v at %v wrote the expiry %v: a lease of %v",
					l.cutTimes.Load(), life, clock.Now().Format("15:04:05.000"), expiry.Format("15:04:05.000"), lease)
			}
		})
	}
}

// grainFile and grainFS keep file times to a grain (exfat's 10 ms).
type grainFile struct {
	fsys.File
	grain time.Duration
}

func (f grainFile) SetTimes(t time.Time) error { return f.File.SetTimes(t.Truncate(f.grain)) }

func grainFS(grain time.Duration) fsys.FS {
	return &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		if !tm.IsZero() {
			tm = tm.Truncate(grain)
		}
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return grainFile{f, grain}, nil
	}}
}

// TestDotDotWithoutSymlinkAsBefore: a path with a ".." and no
// symlink in it must name the Lock's file exactly as before absPath. A
// shell that entered its directory through a symlink ($PWD is the
// symlink's path, which filepath.Abs honours, as it did before) gives
// "b" and "a/../b" the same path, the symlink's; absPath resolves the
// second through syscall.Getwd and EvalSymlinks, to the target's: two
// Lock paths for one file in one process (Path(), messages, the claims'
// contents, the per-path sightings of farSightings differ). And "a/../b/"
// (a trailing slash) failed like "b/", with ErrInvalid ("path names a
// directory"); now it fails with lstat's ENOENT for a file that New
// would create.
// Now the text's reading stands wherever it names the same directory.
func TestDotDotWithoutSymlinkAsBefore(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(root, "sym")
	if err := os.Symlink("real", sym); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sym)
	t.Setenv("PWD", sym) // as a shell that did cd sym sets it
	plain := newLock(t, "b")
	dotdot := newLock(t, "a/../b")
	if plain.Path() != dotdot.Path() {
		t.Errorf(`New("b").Path() = %q but New("a/../b").Path() = %q (before: both %q); the path holds no symlink`, plain.Path(), dotdot.Path(), plain.Path())
	}
	_, err1 := New("b/")
	_, err2 := New("a/../b/")
	if errors.Is(err1, ErrInvalid) != errors.Is(err2, ErrInvalid) {
		t.Errorf(`New("b/") = %v, but New("a/../b/") = %v`, err1, err2)
	}
}

// TestRoundedExpiryIsNotFarAhead: on whole-second file times
// (sshfs) expiryIn rounds expiries up to the next second, so a fresh
// lock's expiry lies up to a second further ahead than its lifetime.
// Status.FarAhead ("a lock written by a host whose clock was far ahead,
// after a clock jumped back, or by a holder with a much longer lifetime")
// is judged against the lifetime and the slop alone: with a slop below a
// second, a holder's own fresh lock, and the same lock seen by another
// Lock of the same lifetime, read as far ahead. Measured on the sshfs
// mounts here with a 2 s lifetime and a 200 ms slop: every fresh lock
// 3.1 to 3.8 s ahead, FarAhead true for its holder.
// Now an expiry without a fraction may lie a second further.
func TestRoundedExpiryIsNotFarAhead(t *testing.T) {
	clock := newStepClock()
	clock.Jump(700 * time.Millisecond) // 00:00:00.700
	path := filepath.Join(t.TempDir(), "app.lck")
	const life, slop = 2 * time.Second, 200 * time.Millisecond
	opts := []Option{WithClock(clock), withoutTimeBase(), withFS(secondsFS()), WithLifetime(life), WithClockSlop(slop)}
	l := newLock(t, path, opts...)
	other := newLock(t, path, opts...)
	if ok, err := l.TryAcquire(); !ok || err != nil { // the expiry 00:00:02.700 is stored as 00:00:02: times are cut
		t.Fatalf("TryAcquire() = %v, %v", ok, err)
	}
	clock.Jump(350 * time.Millisecond)   // 00:00:01.050
	if err := l.Refresh(0); err != nil { // 00:00:03.050, rounded up to 00:00:04
		t.Fatal(err)
	}
	own, err := l.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	seen, err := other.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if own.FarAhead || seen.FarAhead {
		t.Errorf("a lock refreshed at %v with lifetime %v on whole-second times has the expiry %v: FarAhead = %v for its holder, %v for another Lock of the same lifetime and slop %v",
			clock.Now().Format("15:04:05.000"), life, own.Expiry.Format("15:04:05.000"), own.FarAhead, seen.FarAhead, slop)
	}
}

// TestRefreshPastFilesystemTimes: readyClaim refuses an expiry
// that the filesystem stored more than 2 s earlier than written (sshfs
// wraps times past 2106 round to 1970), so Acquire fails with ErrInvalid.
// Refresh(lifetime) accepts any lifetime up to MaxLifetime and writes it
// onto the held lock file through setExpiry, which has no such check: it
// returns nil, the lock file now bears an expiry in 1990, and another
// process breaks it and takes the lock at once, while the holder was told
// its refresh succeeded. "sshfs" runs on the mounts here; "wrapping" on a
// filesystem double that wraps times as SFTP version 3 does.
// Now a Refresh to a longer lifetime first tries its expiry on a file of
// its own (fitsTimes), and fails with ErrInvalid, leaving the lock as it was.
func TestRefreshPastFilesystemTimes(t *testing.T) {
	run := func(t *testing.T, pathA, pathB string, opts ...Option) {
		h := newLock(t, pathA, append([]Option{WithLifetime(10 * time.Second)}, opts...)...)
		if ok, err := h.TryAcquire(); !ok || err != nil {
			t.Fatalf("TryAcquire() = %v, %v", ok, err)
		}
		err := h.Refresh(MaxLifetime)
		st, _ := h.Inspect()
		o := newLock(t, pathB, append([]Option{WithLifetime(10 * time.Second)}, opts...)...)
		ok, oerr := o.TryAcquire()
		if err == nil || ok {
			t.Errorf("Refresh(MaxLifetime) = %v: the lock file's expiry as stored is %v; another Lock's TryAcquire() = %v, %v, while the holder was told the refresh succeeded", err, st.Expiry, ok, oerr)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Refresh(MaxLifetime) = %v; want an error matching ErrInvalid", err)
		}
	}
	t.Run("sshfs", func(t *testing.T) {
		a, b := testenv.SSHFS(t)
		run(t, filepath.Join(a, "app.lck"), filepath.Join(b, "app.lck"))
	})
	t.Run("wrapping", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.lck")
		run(t, path, path, withFS(wrapFS()))
	})
}

// wrapFS keeps file times as 32-bit unsigned seconds, as SFTP version 3
// (sshfs) carries them: a time past 2106-02-07 wraps round to 1970.
func wrapFS() fsys.FS {
	wrap := func(t time.Time) time.Time { return time.Unix(int64(uint32(t.Unix())), 0) }
	return &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		if !tm.IsZero() {
			tm = wrap(tm)
		}
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return wrapFile{f, wrap}, nil
	}}
}

type wrapFile struct {
	fsys.File
	wrap func(time.Time) time.Time
}

func (f wrapFile) SetTimes(t time.Time) error { return f.File.SetTimes(f.wrap(t)) }
