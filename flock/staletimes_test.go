//go:build unix

package flock

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	n       *atomic.Int32 // stale answers, of all staleFiles
	onSet   func()        // called as the times are set, if not nil
	onStale func()        // called as a stale answer is given, if not nil

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
			if f.onStale != nil {
				f.onStale()
			}
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

// byPathStaleFile is a staleFile of sshfs's kind whose times are set by
// path, on whatever file stands at the name it was created at (seen on
// the CI mounts: a client's futimens, after another client moved its file
// aside and created one in its place, landed on the new file).
type byPathStaleFile struct {
	*staleFile
	path string
	sets *atomic.Int32
}

func (f *byPathStaleFile) SetTimes(t time.Time) error {
	info, err := os.Lstat(f.path)
	f.mu.Lock()
	if err == nil {
		f.before, f.stale = info.ModTime(), true
	}
	f.mu.Unlock()
	f.sets.Add(1)
	return os.Chtimes(f.path, t, t)
}

// movingClock is an offClock that real time moves too, so that a
// breaker's own waits end.
type movingClock struct {
	*offClock
	t0 time.Time
}

func (c *movingClock) Now() time.Time     { return c.offClock.Now().Add(time.Since(c.t0)) }
func (c *movingClock) run() time.Duration { return c.offClock.run() + time.Since(c.t0) }

// noLinks returns f with links and moves without replacing refused, so
// that lock files are published by creating them.
func noLinks(f *fsystest.Faulty) *fsystest.Faulty {
	f.OnLink = func(_ func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
	}
	f.OnRenameNoReplace = func(func(string, string) error, string, string) error { return errors.ErrUnsupported }
	return f
}

// TestStaleTimesShorterRefreshNotSetAgain: a holder whose lock file was
// created (no links; sshfs, where its time changes go by path) refreshes
// a minute's lease to a second's, 20 s in. The write lands, the read
// after it is stale, and the holder pauses 4 s as it reads: within the
// old lease, but past the new one and the slop, the lease on disk.
// Meanwhile b breaks that lock file and takes the lock. The retry was
// judged by the old lease, and set the times again, by path on b's lock
// file, to an expiry already past, and c took the lock from b (helper
// 69). It is judged by the earlier of the two.
func TestStaleTimesShorterRefreshNotSetAgain(t *testing.T) {
	const life, short, slop = time.Minute, time.Second, time.Second
	clk := newOffClock()
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	other := func() *Lock {
		mc := &movingClock{clk, time.Now()}
		return newLock(t, path, WithClock(mc), withRunClock(mc.run), withoutTimeBase(), WithLifetime(life), WithClockSlop(slop), withFS(noLinks(&fsystest.Faulty{FS: fsys.OS})))
	}
	var pausing, paused atomic.Bool
	var b *Lock
	var bOK bool
	var bErr error
	pause := func() {
		if pausing.CompareAndSwap(true, false) {
			clk.advance(short + 3*slop)
			paused.Store(true)
			b = other()
			bOK, bErr = b.TryAcquire()
		}
	}
	var sets atomic.Int32
	fs := noLinks(&fsystest.Faulty{FS: fsys.OS})
	fs.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm)
		if err != nil || p != path {
			return f, err
		}
		sf := &staleFile{File: f, n: new(atomic.Int32), onStale: pause}
		return &byPathStaleFile{staleFile: sf, path: p, sets: &sets}, nil
	}
	a := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(life), WithClockSlop(slop))
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.publish != publishCreate {
		t.Fatalf("the lock file was not published by creating it (mode %d)", a.publish)
	}
	clk.advance(life / 3)
	n0 := sets.Load()
	pausing.Store(true)
	err := a.Refresh(short)
	t.Logf("a.Refresh(%v), paused past its new lease = %v", short, err)
	if !paused.Load() {
		t.Fatal("no stale read: the test staged nothing")
	}
	if !bOK || bErr != nil {
		t.Fatalf("b.TryAcquire() during a's pause, past a's new expiry and the slop = %v, %v", bOK, bErr)
	}
	if n := sets.Load() - n0; n != 1 {
		t.Errorf("the refresh set the lock file's times %d times; want once: its new, shorter lease was over when it judged the retry", n)
	}
	c := other()
	if ok, err := c.TryAcquire(); ok || err != nil {
		held, herr := b.IsLocked()
		t.Errorf("c.TryAcquire() = %v, %v while b holds the lock (b.IsLocked() = %v, %v)", ok, err, held, herr)
	}
}

// twoSecondFile keeps times to 2 s, as FAT does.
type twoSecondFile struct{ fsys.File }

func (f twoSecondFile) SetTimes(t time.Time) error {
	return f.File.SetTimes(t.Truncate(2 * time.Second))
}

// lockedLog is a log that Locks write while the test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStaleTimesTwoSecondGrain: on a filesystem that keeps times to 2 s
// (FAT), a time read back up to 2 s less than the one set is the grain,
// not a stale read: nothing is set again (helper 69 counted 54 re-sets in
// 40 acquisitions and refreshes).
func TestStaleTimesTwoSecondGrain(t *testing.T) {
	fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm.Truncate(2*time.Second))
		if err != nil {
			return f, err
		}
		return twoSecondFile{f}, nil
	}}
	var logged lockedLog
	logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := newOffClock()
	ops := 0
	for i := range 10 {
		l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(time.Minute), WithLogger(logger))
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatalf("round %d: Acquire = %v", i, err)
		}
		clk.advance(1100 * time.Millisecond) // over odd and even seconds
		if err := l.Refresh(0); err != nil {
			t.Fatalf("round %d: Refresh = %v", i, err)
		}
		if err := l.Release(); err != nil {
			t.Fatalf("round %d: Release = %v", i, err)
		}
		ops += 2
		clk.advance(300 * time.Millisecond)
	}
	if n := strings.Count(logged.String(), "setting them again"); n > 0 {
		t.Errorf("times cut to 2 s were taken for stale reads and set again %d times in %d acquisitions and refreshes", n, ops)
	}
}

// TestStaleTimesRetryFailure: a claim's attributes read stale after its
// times were set, and setting them again fails (an I/O error: a soft NFS
// mount timing out). Acquire said ErrInvalid, from the stale read, for a
// minute's lifetime (helper 69); it says the I/O error.
func TestStaleTimesRetryFailure(t *testing.T) {
	fs, _ := staleFS()
	stale := fs.OnCreate
	fs.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := stale(next, p, d, tm)
		if err != nil {
			return f, err
		}
		return &failingResetFile{staleFile: f.(*staleFile)}, nil
	}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	l := newLock(t, path, withFS(fs), WithLifetime(time.Minute), WithTimeout(2*time.Second))
	if err := l.Acquire(context.Background()); !errors.Is(err, syscall.EIO) {
		t.Errorf("Acquire, whose claim's times read stale and could not be set again = %v; want the I/O error", err)
	}
}

// failingResetFile is a staleFile whose times, once set, cannot be set
// again.
type failingResetFile struct {
	*staleFile
	set bool
}

func (f *failingResetFile) SetTimes(t time.Time) error {
	if f.set {
		return &os.PathError{Op: "utimensat", Path: "claim", Err: syscall.EIO}
	}
	f.set = true
	return f.staleFile.SetTimes(t)
}

// TestShorterRefreshPausedPastItsLease: a refresh to a shorter lifetime
// pauses as it writes the new expiry, past the new lease and the slop but
// within the old one. A breaker may be at work on the lock file, judged by
// the new expiry now on disk: the refresh says the lock is lost, as one
// paused past the old lease does. It returned nil, the lock counted as
// held, and the lease it reported was already over.
func TestShorterRefreshPausedPastItsLease(t *testing.T) {
	const life, short, slop = time.Minute, time.Second, time.Second
	clk := newOffClock()
	var pausing atomic.Bool
	fs, _ := staleFSSetting(func() {
		if pausing.CompareAndSwap(true, false) {
			clk.advance(short + 2*slop)
		}
	})
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(life), WithClockSlop(slop))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.advance(life / 3)
	pausing.Store(true)
	if err := l.Refresh(short); !errors.Is(err, ErrLockLost) {
		t.Errorf("Refresh(%v), paused past its new lease as it wrote = %v; want ErrLockLost", short, err)
	}
	if pausing.Load() {
		t.Fatal("the refresh set no times: the test staged nothing")
	}
}
