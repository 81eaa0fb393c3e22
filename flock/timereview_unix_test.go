//go:build unix

package flock

import (
	"context"
	"path/filepath"
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
