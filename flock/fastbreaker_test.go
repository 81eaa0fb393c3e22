//go:build unix

package flock

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// TestFastBreakersLockIsLive: a breaker whose clock runs a minute ahead of
// the filesystem's takes the breakers' lock to break an expired lock, and
// pauses there (the fault seam holds it in its link of L.break). A Lock
// writes its expiries from the later of the filesystem's clock and its
// own, so that Locks on a mount that stamps with its client's clock judge
// them right; so this breakers' lock's expiry lies a minute ahead, further
// than a breaker of a right clock writes. A Lock of a right clock that
// comes by must leave it alone, not take it for planted and break it under
// the live breaker, which would then find its breakers' lock gone, and
// whose next move of the lock file would have company (simulation seed
// 15001001, where the paused breaker did move the lock file that the
// other had taken meanwhile).
func TestFastBreakersLockIsLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	breakers := path + ".break"
	if err := os.WriteFile(path, []byte(path+"|gone.example|4242|1"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	newLock := func(opts ...Option) *Lock {
		l, err := New(path, append([]Option{WithLifetime(5 * time.Second), WithClockSlop(time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	fsF := &fsystest.Faulty{FS: fsys.OS}
	fast, right := newLock(WithClock(aheadClock{time.Minute}), withFS(fsF)), newLock()
	var (
		staged   bool
		ahead    time.Duration
		rightOK  bool
		rightErr error
	)
	fsF.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == breakers && err == nil && !staged {
			staged = true
			if fi, err := os.Stat(breakers); err == nil {
				ahead = time.Until(fi.ModTime())
			}
			rightOK, rightErr = right.TryAcquire()
		}
		return err
	}
	ok, err := fast.TryAcquire()
	if !staged {
		t.Fatal("the fast breaker took no breakers' lock: nothing was staged")
	}
	t.Logf("the fast breaker's breakers' lock expired %v ahead of the filesystem's clock", ahead.Round(time.Millisecond))
	if rightOK || rightErr != nil {
		t.Errorf("TryAcquire() of a Lock of a right clock, while a breaker a minute fast held the breakers' lock = %v, %v; want false, nil: it broke a live breaker's lock as planted", rightOK, rightErr)
	}
	if !ok || err != nil {
		t.Errorf("the fast breaker's TryAcquire() = %v, %v; want true, nil", ok, err)
	}
}
