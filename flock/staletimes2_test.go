//go:build unix

package flock

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// secFile keeps times to the second (sshfs). ctl arms one failed Stat, or
// one stale Stat (the times before the latest setting), after a setting.
type secCtl struct {
	mu        sync.Mutex
	failNext  bool // the next SetTimes's following Stat fails
	staleNext bool // the next SetTimes's following Stat shows the times before
	sets      int
}

type secFile struct {
	fsys.File
	c      *secCtl
	before time.Time
	fail   bool
	stale  bool
}

func (f *secFile) SetTimes(t time.Time) error {
	info, err := f.File.Stat()
	if err != nil {
		return err
	}
	f.c.mu.Lock()
	f.c.sets++
	f.before = info.ModTime
	f.fail, f.c.failNext = f.c.failNext, false
	f.stale, f.c.staleNext = f.c.staleNext, false
	f.c.mu.Unlock()
	return f.File.SetTimes(t.Truncate(time.Second))
}

func (f *secFile) Stat() (fsys.Info, error) {
	info, err := f.File.Stat()
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.fail {
		f.fail = false
		return fsys.Info{}, &os.PathError{Op: "fstat", Path: "claim", Err: syscall.EIO}
	}
	if err == nil && f.stale {
		f.stale = false
		info.ModTime, info.ChangeTime = f.before, f.before
	}
	return info, err
}

func secFS(c *secCtl) *fsystest.Faulty {
	return &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm.Truncate(time.Second))
		if err != nil {
			return f, err
		}
		return &secFile{File: f, c: c}, nil
	}}
}

// TestStaleReadAfterFailedReadTeachesNoGrain: on whole-second times
// (sshfs) not yet learned, a refresh's read after its write fails; the
// next refresh, a second later, reads stale once, the expiry the last one
// wrote. 58bf238 knew no earlier read to tell it by, took it for FAT's cut
// to two seconds, and learned FAT's grain (helper 73). Only the first
// times of a file just created may be taken for FAT's cut now.
func TestStaleReadAfterFailedReadTeachesNoGrain(t *testing.T) {
	const life = 10 * time.Second
	c := &secCtl{}
	// 20 ms past an even second: the first cut is too small to teach
	// cutTimes, so expiries keep their fractions.
	start := time.Now().Truncate(2 * time.Second).Add(20 * time.Millisecond)
	clk := &offClock{start: start}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	l := newLock(t, path, withFS(secFS(c)), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	t.Logf("after Acquire: cutTimes=%v cut2=%v stamp=%v", l.cutTimes.Load(), l.cut2.Load(), l.claim.stamp)
	clk.advance(2 * time.Second)
	c.mu.Lock()
	c.failNext = true
	c.mu.Unlock()
	if err := l.Refresh(0); err != nil {
		t.Logf("Refresh with a failed fstat = %v", err)
	}
	t.Logf("after refresh 1: stamp=%v (zero: %v)", l.claim.stamp, l.claim.stamp.IsZero())
	clk.advance(time.Second)
	c.mu.Lock()
	c.staleNext = true
	n0 := c.sets
	c.mu.Unlock()
	if err := l.Refresh(0); err != nil {
		t.Fatalf("Refresh = %v", err)
	}
	exp, _, _, _ := l.acq.state()
	info, _ := os.Stat(path)
	t.Logf("after refresh 2: sets=%d lease=%v disk=%v cutTimes=%v cut2=%v", c.sets-n0, exp, info.ModTime(), l.cutTimes.Load(), l.cut2.Load())
	if l.cut2.Load() {
		t.Errorf("a 1 s filesystem taught the Lock FAT's 2 s grain: a stale read of the expiry written by a refresh whose fstat failed was taken for FAT's cut")
	}
}

// fatFile keeps times to 2 s (FAT); ctl arms one failed Stat after a setting.
type fatFile struct{ *secFile }

func (f fatFile) SetTimes(t time.Time) error {
	return f.secFile.SetTimes(t.Truncate(2 * time.Second))
}

// TestFailedReadAfterRefreshLeaseNotPastDisk: on FAT, once the Lock
// knows whole seconds but not yet two, a refresh writes an odd second and
// its read after fails. The expiry cut to one second was taken for the one
// stored, a second past what FAT stored, and with a slop of 0 another Lock
// took the lock within the holder's lease (helper 73). An expiry not read
// back counts as cut to two seconds.
func TestFailedReadAfterRefreshLeaseNotPastDisk(t *testing.T) {
	const life = 10 * time.Second
	c := &secCtl{}
	fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm.Truncate(2*time.Second))
		if err != nil {
			return f, err
		}
		return fatFile{&secFile{File: f, c: c}}, nil
	}}
	start := time.Now().Truncate(2 * time.Second).Add(300 * time.Millisecond)
	clk := &offClock{start: start}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life), WithClockSlop(0))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	t.Logf("after Acquire: cutTimes=%v cut2=%v", l.cutTimes.Load(), l.cut2.Load())
	clk.advance(2 * time.Second)
	c.mu.Lock()
	c.failNext = true
	c.mu.Unlock()
	if err := l.Refresh(0); err != nil {
		t.Logf("Refresh = %v", err)
	}
	exp, _, _, _ := l.acq.state()
	info, _ := os.Stat(path)
	t.Logf("lease=%v disk=%v cut2=%v", exp, info.ModTime(), l.cut2.Load())
	if exp.After(info.ModTime()) {
		t.Errorf("the lease, %v, ends after the expiry on disk, %v, which others break by", exp, info.ModTime())
	}
	// A breaker with slop 0 and the same clock, just past the disk expiry.
	clk.advance(info.ModTime().Sub(clk.Now()) + 100*time.Millisecond)
	b := newLock(t, path, WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life), WithClockSlop(0), withFS(fs))
	ok, berr := b.TryAcquire()
	held, herr := l.IsLocked()
	t.Logf("at %v: b.TryAcquire = %v, %v; l's lease %v; l.IsLocked = %v, %v", clk.Now(), ok, berr, exp, held, herr)
	if ok && held {
		t.Errorf("b took the lock while l holds it within its lease")
	}
}

// TestFirstClaimLeaseOverPhases: new Locks on FAT and on whole-second
// times, over the phase of a two-second period, with lifetimes of 1 to
// 15 s: the first claim's lease, as stored, is never past what the Lock
// counts on and never under half the lifetime, and for lifetimes of 4 s
// and more its times are set once (helper 73's sweep).
func TestFirstClaimLeaseOverPhases(t *testing.T) {
	for _, grain := range []time.Duration{time.Second, 2 * time.Second} {
		for _, life := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 15 * time.Second} {
			maxSets, minLease := 0, time.Hour
			var worst time.Duration
			for ph := time.Duration(0); ph < 2*time.Second; ph += 25 * time.Millisecond {
				c := &secCtl{}
				g := grain
				fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
					f, err := next(p, d, tm.Truncate(g))
					if err != nil {
						return f, err
					}
					sf := &secFile{File: f, c: c}
					if g == 2*time.Second {
						return fatFile{sf}, nil
					}
					return sf, nil
				}}
				start := time.Now().Truncate(2 * time.Second).Add(ph)
				clk := &offClock{start: start}
				path := filepath.Join(testenv.TempDir(t), "app.lck")
				l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life))
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatalf("grain %v life %v phase %v: %v", grain, life, ph, err)
				}
				info, _ := os.Stat(path)
				lease := info.ModTime().Sub(start)
				exp, _, _, _ := l.acq.state()
				if exp.After(info.ModTime()) {
					t.Errorf("grain %v life %v phase %v: lease %v after disk %v", grain, life, ph, exp, info.ModTime())
				}
				if c.sets > maxSets {
					maxSets = c.sets
				}
				if lease < minLease {
					minLease, worst = lease, ph
				}
				if lease < life/2 {
					t.Errorf("grain %v life %v phase %v: the first claim's lease on disk is %v", grain, life, ph, lease)
				}
				if life >= 4*time.Second && c.sets > 1 {
					t.Errorf("grain %v life %v phase %v: %d settings of times in one Acquire", grain, life, ph, c.sets)
				}
				l.Release()
				l.Close()
			}
			t.Logf("grain %v life %v: max sets per Acquire %d, min lease on disk %v (phase %v)", grain, life, maxSets, minLease, worst)
		}
	}
}

// TestFailedReadAfterRetimeLeaseNotPastDisk: a waiter's claim, timed
// again for each attempt, on whole-second times not yet learned: the read
// after the attempt that takes the lock fails. The expiry as sent, with
// its fraction, was taken for the one stored, past what the filesystem
// kept: the twin, for claims, of TestFailedReadAfterRefreshLeaseNotPastDisk.
// An expiry not read back counts as cut to two seconds there too.
func TestFailedReadAfterRetimeLeaseNotPastDisk(t *testing.T) {
	const life = 10 * time.Second
	c := &secCtl{}
	fs := secFS(c)
	fs.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if err != nil {
			// The lock is busy: the next attempt's read of its claim
			// after timing it again fails.
			c.mu.Lock()
			c.failNext = true
			c.mu.Unlock()
		}
		return err
	}
	// 20 ms past a second: the first claim's cut is too small to teach
	// whole seconds, so expiries keep their fractions.
	start := time.Now().Truncate(time.Second).Add(20 * time.Millisecond)
	clk := &offClock{start: start}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	holder := newLock(t, path, WithLifetime(life))
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life))
	acquired := make(chan error, 1)
	go func() { acquired <- l.Acquire(context.Background()) }()
	for {
		c.mu.Lock()
		armed := c.failNext
		c.mu.Unlock()
		if armed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if lease, _, _, _ := l.acq.state(); lease.After(info.ModTime()) {
		t.Errorf("the lease ends at %v, %v past the expiry on disk, %v", lease.Format("15:04:05.000"), lease.Sub(info.ModTime()), info.ModTime().Format("15:04:05.000"))
	}
}
