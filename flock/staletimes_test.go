//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// staleFile is a file whose first read of its attributes after each
// setting of its times shows the times it had before: sshfs answering
// from attributes that a directory listing read before the change and
// cached after it. Setting the same times again then shows them.
type staleFile struct {
	fsys.File
	n     *atomic.Int32 // stale answers, of all staleFiles
	onSet func()        // called as the times are set, if not nil

	mu     sync.Mutex
	before time.Time // the modification time before the latest setting
	stale  bool      // the next Stat shows before
}

// staleFS returns the system's filesystem whose created files are
// staleFiles, and the count of stale answers they gave. (Creating a
// file with times counts as setting them.)
func staleFS() (*fsystest.Faulty, *atomic.Int32) {
	return staleFSSetting(nil)
}

// staleFSSetting is staleFS whose files call onSet as their times are
// set.
func staleFSSetting(onSet func()) (*fsystest.Faulty, *atomic.Int32) {
	n := new(atomic.Int32)
	return &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		created := time.Now().Truncate(time.Second)
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return &staleFile{File: f, n: n, onSet: onSet, before: created, stale: !tm.IsZero()}, nil
	}}, n
}

func (f *staleFile) SetTimes(t time.Time) error {
	info, err := f.File.Stat()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.before, f.stale = info.ModTime, true
	f.mu.Unlock()
	if f.onSet != nil {
		f.onSet()
	}
	return f.File.SetTimes(t)
}

func (f *staleFile) Stat() (fsys.Info, error) {
	info, err := f.File.Stat()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && f.stale {
		f.stale = false
		if !info.ModTime.Equal(f.before) {
			f.n.Add(1)
			info.ModTime, info.ChangeTime = f.before, f.before
		}
	}
	return info, err
}

// TestStaleTimesAfterSetting: the attributes of a claim or lock file of
// ours, read just after its expiry was set, show the times from before
// (sshfs's cache, filled by another process's listing of the directory
// meanwhile; clean-clone CI met it once in TestSharedForgedContents, and
// TestNetFSAcquireBesideListings meets it for real). A new claim then
// shows the time it was created. Acquire took the expiry for one the
// filesystem cannot store and failed with ErrInvalid where the lifetime
// was a minute; where it was a second, the claim's lease looked over once
// it was linked, every attempt gave the lock up again, and Acquire timed
// out. A lock file published by creating it showed that time after the
// acquisition's own expiry was written, and the lease was over at once;
// a refresh's showed the expiry before, and the lease was judged by it.
// The times are set again and read back before they are judged.
func TestStaleTimesAfterSetting(t *testing.T) {
	refuse := func(_ func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
	}
	noRename := func(func(string, string) error, string, string) error { return errors.ErrUnsupported }
	for _, mode := range []string{"link", "create"} {
		for _, life := range []time.Duration{time.Minute, time.Second} {
			t.Run(mode+"/"+life.String(), func(t *testing.T) {
				path := filepath.Join(testenv.TempDir(t), "app.lck")
				fs, stale := staleFS()
				if mode == "create" {
					fs.OnLink, fs.OnRenameNoReplace = refuse, noRename
				}
				clk := newOffClock()
				l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(life), WithTimeout(3*time.Second))
				start := clk.Now()
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire with a lifetime of %v, its files' times read stale once after each setting = %v", life, err)
				}
				defer l.Release()
				if mode == "create" && l.publish != publishCreate {
					t.Fatalf("the lock file was not published by creating it (mode %d)", l.publish)
				}
				checkLease(t, l, "Acquire", start, life)

				// A refresh, a third of the lifetime on.
				clk.advance(life / 3)
				start = clk.Now()
				if err := l.Refresh(0); err != nil {
					t.Fatalf("Refresh() = %v", err)
				}
				checkLease(t, l, "Refresh", start, life)
				if stale.Load() == 0 {
					t.Fatal("no read of attributes was stale: the test staged nothing")
				}
			})
		}
	}
}

// checkLease checks that the lease of l, just acquired or refreshed by
// op, which started at start, ends about its lifetime after.
func checkLease(t *testing.T, l *Lock, op string, start time.Time, life time.Duration) {
	t.Helper()
	expiry, _, _, _ := l.acq.state()
	if expiry.Before(start.Add(life - 500*time.Millisecond)) {
		t.Errorf("after %s, the lease ends at %v, %v after %s began; want about the lifetime, %v", op, expiry, expiry.Sub(start), op, life)
	}
}

// TestStaleTimesNotSetAgainPastLease: a refresh's write of the expiry
// pauses past the lease it was written under, and the attributes read
// after it are stale. The lock file may be another's by then (where a
// descriptor's time change goes by path, sshfs, the write lands on it):
// the times are not set again, and the refresh says the lock is lost.
func TestStaleTimesNotSetAgainPastLease(t *testing.T) {
	const life, slop = time.Minute, time.Second
	clk := newOffClock()
	var pausing atomic.Bool
	var sets atomic.Int32
	fs, stale := staleFSSetting(func() {
		if pausing.Load() {
			if sets.Add(1) == 1 {
				clk.advance(life + 2*slop) // the pause
			}
		}
	})
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(life), WithClockSlop(slop))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.advance(life / 3)
	before := stale.Load()
	pausing.Store(true)
	if err := l.Refresh(0); !errors.Is(err, ErrLockLost) {
		t.Errorf("Refresh() paused past its lease while writing = %v; want ErrLockLost", err)
	}
	pausing.Store(false)
	if stale.Load() == before {
		t.Fatal("the refresh read no stale attributes: the test staged nothing")
	}
	if n := sets.Load(); n != 1 {
		t.Errorf("the refresh set the lock file's times %d times; want once: past the lease it was written under, it must not set them again", n)
	}
}
