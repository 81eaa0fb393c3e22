//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// offClock is the system clock plus an offset that the test moves, wall
// and run clock alike: time passing, as every clock of the host sees it,
// without waiting for it. Its timers are the system's, which the
// keep-alive caps at wallCheck, so a keeper looks at least once a second.
type offClock struct {
	start time.Time
	off   atomic.Int64
}

func newOffClock() *offClock { return &offClock{start: time.Now()} }

func (c *offClock) Now() time.Time {
	return c.start.Round(0).Add(time.Duration(c.off.Load()))
}
func (c *offClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }
func (c *offClock) run() time.Duration                   { return time.Duration(c.off.Load()) }
func (c *offClock) advance(d time.Duration)              { c.off.Add(int64(d)) }

// stallFile blocks SetTimes while its filesystem is stalled (a hard-mounted
// NFS server that stopped answering).
type stallFile struct {
	fsys.File
	s *stall
}

type stall struct {
	on      atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// free lets the stalled call, and any later one, go on.
func (s *stall) free() { s.once.Do(func() { close(s.release) }) }

// stallingFS returns a stall, freed when the test ends, and the system's
// filesystem whose files, once created, stall in SetTimes while it is on.
func stallingFS(t *testing.T) (*stall, fsys.FS) {
	st := &stall{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(st.free)
	return st, &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return stallFile{File: f, s: st}, nil
	}}
}

func (f stallFile) SetTimes(t time.Time) error {
	if f.s.on.CompareAndSwap(true, false) {
		close(f.s.entered)
		<-f.s.release
	}
	return f.File.SetTimes(t)
}

// TestKeepAliveReportsLossWhileRefreshStalls: a holder's keep-alive
// refreshes on schedule, and the refresh's write of the new expiry stalls
// (a network filesystem that stopped answering; a hard NFS mount blocks
// such a call for as long as the server is away). The holder's own clock
// then passes its expiry and the slop, and another process, whose calls do
// answer, breaks the lock and takes it. KeepAlive's context (guard's fn
// runs under it) must be cancelled at the lease's end, by the holder's own
// clock: it was cancelled only when the stalled call returned, however
// long after (the time review; the storm review staged it with a SIGSTOPped
// sshfs client of the holder's, through guard and the command).
func TestKeepAliveReportsLossWhileRefreshStalls(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := newOffClock()
	st, fs := stallingFS(t)
	const life, slop = 30 * time.Second, time.Second
	h := newLock(t, path, WithClock(clk), withRunClock(clk.run), withFS(fs), WithLifetime(life), WithClockSlop(slop))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	st.on.Store(true)
	clk.advance(life/3 + time.Second) // the refresh falls due
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the keep-alive did not refresh within 10 s of its refresh falling due")
	}
	expiry, _, _, _ := h.acq.state()
	clk.advance(life + slop) // the filesystem's server is still away
	if !h.leaseOver(expiry) {
		t.Fatalf("the holder's lease is not over by its own clock, %v past its start", life/3+life+2*slop)
	}
	// Another process breaks the lock and takes it: by its own clock (no
	// time base: the test stands for time passing with a clock set ahead)
	// the lock expired more than the slop ago.
	b := newLock(t, path, WithClock(clk), withoutTimeBase(), WithLifetime(life), WithClockSlop(slop))
	if ok, err := b.TryAcquire(); !ok || err != nil {
		t.Fatalf("b.TryAcquire() of a lock past its expiry and slop = %v, %v", ok, err)
	}
	select {
	case <-kctx.Done():
	case <-time.After(3 * time.Second):
		t.Errorf("b holds the lock, and the holder's lease ended %v ago by its own clock, yet KeepAlive's context is still live 3 s later: the keeper waits in a refresh whose write stalled, and reports nothing until that call returns", h.aheadBy(expiry).Abs())
	}
	st.free()
	<-kctx.Done()
	t.Logf("once the stalled call returned: %v", context.Cause(kctx))
}

// TestBreakerPausedWhileRecheckingClockSetBackMovesNothing is
// TestBreakerPausedWhileRecheckingMovesNothing with a wall clock set back
// during the breaker's pause (an NTP step): the breaker pauses 2 s while
// it reads the lock file again (its run clock, CLOCK_BOOTTIME, counts the
// 2 s), and its wall clock is stepped back 1.5 s meanwhile. The holder
// released the instance the breaker read and another process took the
// lock during the pause. The re-read is bounded by recheckMax (0.8 s), so
// that a breaker never moves a lock taken by an acquirer that stopped
// waiting for it; measured by the wall clock alone, the step made it
// 0.5 s, and the fresh lock file was moved aside. It is measured by the
// run clock too (reading.since), and a step makes the clocks disagree.
func TestBreakerPausedWhileRecheckingClockSetBackMovesNothing(t *testing.T) {
	clock := newStepClock()
	var run atomic.Int64
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
				run.Add(int64(2 * time.Second))                   // the pause, as the run clock counts it
				clock.Jump(2*time.Second - 1500*time.Millisecond) // the wall clock, stepped back 1.5 s in it
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
	holder, next := lock(), lock()
	breaker := lock(withFS(breakerFS), withRunClock(func() time.Duration { return time.Duration(run.Load()) }))
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
		t.Errorf("the breaker moved the lock file that the next holder took during its 2 s pause: it measured its re-read by the wall clock, stepped back 1.5 s meanwhile, as 0.5 s (< recheckMax %v)", recheckMax)
	}
	if ok, err := next.IsLocked(); !ok || err != nil {
		t.Errorf("next.IsLocked() = %v, %v; want true", ok, err)
	}
}

// TestLifetimePastFilesystemTimesFails: a lifetime that New accepts (up to
// MaxLifetime, 100 years) gives an expiry past 2106-02-07, which sshfs
// (SFTP version 3 carries file times as 32-bit unsigned seconds) stores
// wrapped around, in 1990. The holder found its lease over at once and
// started afresh, so an uncontended Acquire spun until its context ended,
// leaving lock files expired since 1990 and saying nothing. It must fail
// at once with ErrInvalid, leaving nothing. (ext4 and XFS without bigtime
// clamp a late time to 2038 or 2446 instead: still far ahead.)
func TestLifetimePastFilesystemTimesFails(t *testing.T) {
	a, _ := testenv.SSHFS(t)
	l := newLock(t, filepath.Join(a, "app.lck"), WithLifetime(MaxLifetime))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.Acquire(ctx)
	if err != nil && ctx.Err() != nil {
		st, _ := l.Inspect()
		t.Errorf("Acquire() of a free lock with lifetime %v (New accepts up to MaxLifetime) = %v: it never took the lock; the lock file's expiry as sshfs stored it is %v, state %v", MaxLifetime, err, st.Expiry, st.State)
	}
	if err == nil {
		return // a server that keeps such times
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Acquire() = %v; want an error matching ErrInvalid, that the filesystem cannot keep the expiry", err)
	}
	if names := testenv.Names(t, a); len(names) != 0 {
		t.Errorf("left behind: %q", names)
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

// TestForcedBreakOutwaitsBreakerAcrossClockStep: a forced break that meets
// a live breaker's lock waits breakTTL and a second beside it before it
// breaks that lock (outwaitBreakers), since its breaker may yet move what
// stands at the lock path. A wall clock stepped ahead during the wait must
// not cut it short: it was timed by the wall clock, which a step of
// breakTTL ended at the next look, and the breakers' lock of a breaker at
// work was broken at once.
func TestForcedBreakOutwaitsBreakerAcrossClockStep(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	holder := newLock(t, path)
	if ok, err := holder.TryAcquire(); !ok || err != nil {
		t.Fatalf("holder.TryAcquire() = %v, %v", ok, err)
	}
	other := newLock(t, path)
	other.mu.Lock()
	b, err := other.lockBreakers()
	other.mu.Unlock()
	if err != nil || b == nil {
		t.Fatalf("lockBreakers() = %v, %v", b, err)
	}
	defer func() {
		other.mu.Lock()
		other.unlockBreakers(b)
		other.mu.Unlock()
	}()
	planted, err := os.Lstat(path + ".break")
	if err != nil {
		t.Fatal(err)
	}
	clk := &stepRunClock{start: time.Now()}
	breaker := newLock(t, path, WithClock(clk), withRunClock(clk.runClock))
	res := make(chan error, 1)
	go func() {
		_, err := breaker.Break(true)
		res <- err
	}()
	time.Sleep(300 * time.Millisecond) // into the wait (its looks are 100 ms apart)
	clk.wall.Store(int64(breakTTL + 2*time.Second))
	time.Sleep(time.Second) // the wait lasts breakTTL+1s by the run clock: 6 s
	if fi, err := os.Lstat(path + ".break"); err != nil || !os.SameFile(fi, planted) {
		t.Errorf("a wall clock stepped %v ahead cut the forced break's wait for a live breaker short: the breakers' lock is %v, %v", breakTTL+2*time.Second, fi, err)
	}
	breaker.Close() // ends the wait now, not 5 s on
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Errorf("Break(true), closed while it waited = %v; want ErrClosed", err)
	}
}

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

// TestKeepAliveWholeSecondTimes: on a filesystem that keeps file times to
// the second (sshfs, where an uncontended KeepAlive with a 1 s or 1.2 s
// lifetime was cancelled with ErrLockLost within two seconds), a lease
// written as 00:00:01.700 is stored as 00:00:01, 700 ms shorter. The
// keep-alive scheduled its refresh a third of the lifetime after the
// write, at 333 ms, found the lease over, and reported the lock lost,
// uncontended. It now refreshes at a third of the lease stored, and once
// the Lock has seen times cut, it rounds expiries up to the next second.
func TestKeepAliveWholeSecondTimes(t *testing.T) {
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

// TestPausedCreateClockSetBack: where links do not work (sshfs with
// disable_hardlink) the lock file is created, with the filesystem's times,
// and only then given its expiry through the descriptor, whose time change
// sshfs sends by path. A create that took long is not trusted
// (publishClaim), since a breaker may have broken the fresh file meanwhile
// and another process taken the lock, whose lock file the time change
// would then reach. Here the creator pauses 3 s in its create (its run
// clock counts them), during which another process, through the other
// sshfs client, breaks the fresh lock file and takes the lock with a 60 s
// lifetime; and its wall clock is set back 2.5 s meanwhile (an NTP step).
// Measured by the wall clock alone, the create took 0.5 s, and the
// creator's 1 s expiry landed on the new holder's lock file, 59 s early.
func TestPausedCreateClockSetBack(t *testing.T) {
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
