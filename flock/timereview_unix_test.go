//go:build unix

package flock

import (
	"context"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/retry"
)

// secondsFile stores times cut to whole seconds, as sshfs, HFS+, ext3 and
// ext4 with 128-byte inodes do.
type secondsFile struct{ fsys.File }

func (f secondsFile) SetTimes(t time.Time) error { return f.File.SetTimes(t.Truncate(time.Second)) }

// secondsFS is the system's filesystem with times kept to whole seconds.
func secondsFS() fsys.FS {
	return &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		if !tm.IsZero() {
			tm = tm.Truncate(time.Second)
		}
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return secondsFile{f}, nil
	}}
}

// TestReviewKeepAliveWholeSecondTimes: on a filesystem that keeps file
// times to the second (sshfs, measured, loses this way too: an
// uncontended KeepAlive with a 1 s or 1.2 s lifetime is cancelled with
// ErrLockLost within two seconds), a lease written as 00:00:01.700 is
// stored as 00:00:01, 700 ms shorter, and the holder rightly judges it by
// the stored expiry. But the keep-alive schedules its next refresh a third
// of the nominal lifetime after the write (acquisition.state: written.run
// + life/3), not a third of the lease that was stored: with a lifetime of
// 1 s (WithLifetime: "Keep lifetimes to a second or more") the lease left
// is 300 ms, the refresh falls due at 333 ms, finds the lease over and
// reports the lock lost, uncontended, although the keeper had a whole
// 300 ms in which to refresh.
func TestReviewKeepAliveWholeSecondTimes(t *testing.T) {
	clock := newStepClock()
	clock.Jump(700 * time.Millisecond) // 2030-01-01 00:00:00.700
	path := filepath.Join(t.TempDir(), "app.lck")
	l, err := New(path, WithClock(clock), withoutTimeBase(), withFS(secondsFS()), WithLifetime(time.Second), WithRetry(retry.Constant(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	expiry, _, _, _ := l.acq.state()
	ctx, stop := l.KeepAlive(context.Background())
	defer stop()
	for range 6 {
		d, ok := clock.nextTimer(t, ctx)
		if !ok {
			break
		}
		clock.Advance(d)
	}
	if ctx.Err() != nil {
		t.Errorf("an uncontended KeepAlive with a 1 s lifetime on whole-second file times lost the lock: %v (the first expiry was stored as %v, %v after the acquisition; the refresh was due %v after it)",
			context.Cause(ctx), expiry, expiry.Sub(time.Date(2030, 1, 1, 0, 0, 0, 700e6, time.UTC)), time.Second/3)
	}
}

// stepRunClock is the system clock whose wall reading the test sets off
// by wall, and whose run clock (given with withRunClock) the test moves on
// by run: a pause the clock cannot see, counted by each as the test says.
type stepRunClock struct {
	start     time.Time
	wall, run atomic.Int64
}

func (c *stepRunClock) Now() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.wall.Load()))
}
func (c *stepRunClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }
func (c *stepRunClock) runClock() time.Duration {
	return time.Since(c.start) + time.Duration(c.run.Load())
}

// TestReviewPausedCreateClockSetBack: where links do not work (sshfs with
// disable_hardlink) the lock file is created, with the filesystem's times,
// and only then given its expiry through the descriptor, whose time change
// sshfs sends by path. A create that took long is not trusted
// (publishClaim: "Paused: the file may be broken and replaced by now"),
// since a breaker may have broken the fresh file meanwhile and another
// process taken the lock; the time change would then land on that
// process's lock file. The pause is measured by the wall clock alone
// (protocol.go, publishClaim: l.now().Sub(start)). Here the creator
// pauses 3 s in its create (its run clock counts them), during which
// another process, through the other sshfs client, breaks the fresh lock
// file and takes the lock with a 60 s lifetime; and its wall clock is set
// back 2.5 s meanwhile (an NTP step), so that the create looks like it
// took 0.5 s. The creator's time change, its 1 s expiry, lands on the new
// holder's lock file: that lock now expires 59 s early, and a third
// process may break it while its holder counts on it.
func TestReviewPausedCreateClockSetBack(t *testing.T) {
	for _, tt := range []struct {
		name string
		wall time.Duration // how far the wall clock moves in the 3 s pause
	}{
		{"paused", 3 * time.Second},
		{"paused, clock set back", 500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nolink := testenv.SSHFSNoLink(t)
			rootA := os.Getenv(testenv.SSHFSAEnv)
			server := os.Getenv(testenv.SSHFSServerEnv)
			if rootA == "" || server == "" {
				testenv.Missing(t, "%s and %s are not set", testenv.SSHFSAEnv, testenv.SSHFSServerEnv)
			}
			base := filepath.Base(nolink)
			viaA := filepath.Join(rootA, base, "app.lck")
			onServer := filepath.Join(server, base, "app.lck")
			if _, err := os.Stat(filepath.Dir(viaA)); err != nil {
				t.Skipf("the no-link mount's directory is not seen through %s: %v", rootA, err)
			}
			path := filepath.Join(nolink, "app.lck")
			clk := &stepRunClock{start: time.Now()}
			other := newLock(t, viaA, WithClock(aheadClock{2 * time.Second}), withoutTimeBase(), WithLifetime(time.Minute), WithClockSlop(0))
			var otherExpiry time.Time
			fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
				f, err := next(p, d, tm)
				if err != nil || p != path || !otherExpiry.IsZero() {
					return f, err
				}
				// The pause: the other process (its clock 2 s on, for
				// the time passing) breaks the fresh lock file and
				// takes the lock.
				if ok, err := other.TryAcquire(); !ok || err != nil {
					t.Errorf("other.TryAcquire() during the pause = %v, %v", ok, err)
					return f, err
				}
				otherExpiry, _ = other.Expiration()
				clk.run.Add(int64(3 * time.Second))
				clk.wall.Add(int64(tt.wall))
				return f, err
			}}
			h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(time.Second), WithClockSlop(0))
			ok, err := h.TryAcquire()
			t.Logf("h.TryAcquire() = %v, %v", ok, err)
			if otherExpiry.IsZero() {
				t.Fatal("not staged: the other process did not take the lock during the pause")
			}
			fi, err := os.Stat(onServer)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.ModTime(); !got.Equal(otherExpiry) {
				t.Errorf("the new holder's lock file expires at %v on the server, not at %v as it wrote (%v early): the paused creator's time change landed on it", got, otherExpiry, otherExpiry.Sub(got))
				// A third process, 2 s on as the other is, through a client
				// that has not cached the lock file's times, breaks it.
				third := newLock(t, filepath.Join(os.Getenv(testenv.SSHFSBEnv), base, "app.lck"), WithClock(aheadClock{2 * time.Second}), withoutTimeBase(), WithClockSlop(0))
				ok, err := third.TryAcquire()
				t.Logf("third.TryAcquire() through the other client = %v, %v; other's lease over: %v", ok, err, other.leaseOver(otherExpiry))
				if ok && err == nil && !other.leaseOver(otherExpiry) {
					t.Errorf("two holders: a third process took the lock while the new holder counts on its lease for %v more", other.aheadBy(otherExpiry))
				}
			}
		})
	}
}
