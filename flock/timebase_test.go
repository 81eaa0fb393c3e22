package flock

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// TestStampBounds: the bounds on the filesystem's now enclose every moment
// the stamp allows, grow with the time since the sample by the run clock
// (plus drift), and move not at all when the wall clock is set, back or
// forward (issue 11: a step forward wrote expiries that far ahead).
func TestStampBounds(t *testing.T) {
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	before := reading{wall: wall, run: time.Hour}
	after := reading{wall: wall.Add(3 * time.Millisecond), run: before.run + 3*time.Millisecond}
	on := func(r reading, run, wall time.Duration) reading {
		return reading{wall: r.wall.Add(wall), run: r.run + run}
	}
	stamp := wall.Add(time.Minute + time.Millisecond) // the filesystem a minute ahead
	s := stampSample{before: before, after: after, stamp: stamp, grain: stampGrain}
	tenOn := [2]time.Time{stamp.Add(10*time.Second - 10*time.Millisecond), stamp.Add(stampGrain + 3*time.Millisecond + 10*time.Second + 10*time.Millisecond)}
	for _, tt := range []struct {
		name   string
		now    reading
		lo, hi time.Time
	}{
		{"at once", after, stamp, stamp.Add(stampGrain + 3*time.Millisecond)},
		{"10 s on", on(after, 10*time.Second, 10*time.Second), tenOn[0], tenOn[1]},
		{"the wall clock set back an hour", on(after, 0, -time.Hour), stamp, stamp.Add(stampGrain + 3*time.Millisecond)},
		{"the wall clock set forward an hour", on(after, 0, time.Hour), stamp, stamp.Add(stampGrain + 3*time.Millisecond)},
		{"10 s on, the wall clock set back an hour", on(after, 10*time.Second, 10*time.Second-time.Hour), tenOn[0], tenOn[1]},
		{"10 s on, the wall clock set forward an hour", on(after, 10*time.Second, 10*time.Second+time.Hour), tenOn[0], tenOn[1]},
	} {
		lo, hi := s.bounds(tt.now, false)
		if !lo.Equal(tt.lo) || !hi.Equal(tt.hi) {
			t.Errorf("%s: bounds = [%v, %v]; want [%v, %v]", tt.name, lo, hi, tt.lo, tt.hi)
		}
	}
	// Where the run clock stops while the machine sleeps, an hour more by
	// the wall clock than by the run clock may be a suspend: the upper
	// bound takes it, the lower does not (review of the time base).
	if lo, hi := s.bounds(on(after, 0, time.Hour), true); lo.After(stamp) || hi.Before(stamp.Add(time.Hour)) {
		t.Errorf("run clock stopped for an hour: bounds = [%v, %v]; want the lower at most %v, the upper at least %v", lo, hi, stamp, stamp.Add(time.Hour))
	}
	// A whole-second stamp (sshfs) may stand for any moment of its second.
	whole := stampSample{before: before, after: after, stamp: stamp.Truncate(time.Second), grain: time.Second}
	if lo, hi := whole.bounds(after, false); hi.Sub(lo) < time.Second {
		t.Errorf("whole-second stamp: bounds [%v, %v] narrower than its second", lo, hi)
	}
}

// aheadClock is the system clock set d ahead, monotonic reading and all.
type aheadClock struct{ d time.Duration }

func (c aheadClock) Now() time.Time                       { return time.Now().Add(c.d) }
func (c aheadClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// TestSkewWarnedOnce: a host whose clock is a minute off the filesystem's
// logs one Warn line naming the offset, once per directory and process,
// however many Locks it makes there; and Inspect reports the offset.
func TestSkewWarnedOnce(t *testing.T) {
	dir := testenv.TempDir(t) // t.TempDir's cleanup fails under Wine
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for range 3 {
		l, err := New(filepath.Join(dir, "app.lck"), WithClock(aheadClock{time.Minute}), WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, err := l.Inspect()
		if err != nil || st.ClockOffset > -59*time.Second || st.ClockOffset < -61*time.Second || st.FarAhead {
			t.Errorf("Inspect() = ClockOffset %v, FarAhead %v, %v; want about -1m, false", st.ClockOffset, st.FarAhead, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "offset=-1m0") && !strings.Contains(logs.String(), "offset=-59.9") {
		t.Errorf("%d Warn lines; want 1 naming an offset of about -1m:\n%s", n, logs.String())
	}
}

// setClock is the system clock as a Lock sees it after someone set the
// wall clock (an NTP step, settimeofday) by wall, and while the machine
// sleeps, once frozen, if its run clock does not count suspends (Go's
// monotonic clock, where the system has no clock that does); ahead moves
// both, as time passing faster than the filesystem sees. Its run clock is
// given with withRunClock, as the system's is in production.
type setClock struct {
	start       time.Time
	wall, ahead atomic.Int64
	frozen      atomic.Bool
	frozenAt    atomic.Int64
}

func newSetClock() *setClock { return &setClock{start: time.Now()} }

func (c *setClock) Now() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.wall.Load() + c.ahead.Load()))
}
func (c *setClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }
func (c *setClock) run() time.Duration {
	if c.frozen.Load() {
		return time.Duration(c.frozenAt.Load())
	}
	return time.Since(c.start) + time.Duration(c.ahead.Load())
}

// freeze stops the run clock: the machine is suspended from now on, as a
// run clock that does not count suspends sees it.
func (c *setClock) freeze() {
	c.frozenAt.Store(int64(c.run()))
	c.frozen.Store(true)
}

// options returns the options that give a Lock this clock.
func (c *setClock) options(opts ...Option) []Option {
	return append([]Option{WithClock(c), withRunClock(c.run)}, opts...)
}

// newLock makes a Lock, closed when the test ends.
func newLock(t *testing.T, path string, opts ...Option) *Lock {
	t.Helper()
	l, err := New(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// timeBaseDirs are the directories the time base's regression tests run
// in: the default temporary directory, and an sshfs mount, whose change
// times are copies of the modification times, so that setting times
// teaches nothing there.
func timeBaseDirs() map[string]func(*testing.T) string {
	return map[string]func(*testing.T) string{
		"tempdir": func(t *testing.T) string { return testenv.TempDir(t) },
		"sshfs":   func(t *testing.T) string { a, _ := testenv.SSHFS(t); return a },
	}
}

// TestWallSetForwardWritesNoFarAheadExpiry: a Lock whose wall clock was an
// hour behind when it sampled the filesystem's clock, and is then set
// right (an NTP step forward), writes its next expiry a lifetime ahead of
// the filesystem's now, not an hour more; a lock whose holder then dies is
// taken once that lifetime and the slop are over. Carried by the wall
// clock, the bounds grew by the step (issue 11).
func TestWallSetForwardWritesNoFarAheadExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 2 s of real time for lifetimes to pass: runs without -short (.ci/test)")
	}
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := newSetClock()
	clk.wall.Store(int64(-time.Hour))
	a := newLock(t, path, clk.options(WithLifetime(time.Second), WithClockSlop(time.Second))...)
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	clk.wall.Store(0)
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// a dies holding the lock: it neither refreshes nor releases.
	b := newLock(t, path, WithLifetime(time.Second), WithClockSlop(time.Second))
	st, err := b.Inspect()
	if err != nil || st.FarAhead {
		t.Errorf("Inspect() = Expiry %v (now %v), FarAhead %v, %v; want an expiry about a lifetime ahead", st.Expiry, time.Now(), st.FarAhead, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Acquire(ctx); err != nil {
		t.Errorf("Acquire() of a lock with a 1 s lifetime whose holder died = %v; want nil", err)
	}
}

// TestSuspendedWaiterBreaksExpiredLock: a waiter that sleeps through a
// suspend that its run clock does not count breaks a lock that expired
// meanwhile about as soon as it would have without the suspend. Its
// samples from before the suspend hold its lower bound on the filesystem's
// clock back by the suspend; it takes new ones, and forgets those. On
// sshfs, where a waiter that keeps its claim learns nothing from setting
// its times, it waited out the suspend's length (issue 11).
func TestSuspendedWaiterBreaksExpiredLock(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 4 s of real time for lifetimes to pass: runs without -short (.ci/test)")
	}
	for name, dir := range timeBaseDirs() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir(t), "app.lck")
			h := newLock(t, path, WithLifetime(2*time.Second), WithClockSlop(2*time.Second))
			if err := h.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			// h dies holding the lock: it neither refreshes nor releases.
			clk := newSetClock()
			attempts := make(chan struct{}, 100)
			// An attempt publishes the claim at the lock path: by a link,
			// or on Windows by a move that replaces nothing.
			counted := func(next func(string, string) error, o, n string) error {
				if n == path {
					select {
					case attempts <- struct{}{}:
					default:
					}
				}
				return next(o, n)
			}
			w := newLock(t, path, clk.options(WithLifetime(2*time.Second), WithClockSlop(2*time.Second),
				WithRetry(retry.Policy{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}),
				withFS(&fsystest.Faulty{FS: fsys.OS, OnLink: counted, OnRenameNoReplace: counted}))...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Acquire(ctx) }()
			<-attempts
			<-attempts   // w has sampled, and waits
			clk.freeze() // w's machine is suspended from now on
			if err := <-done; err != nil {
				t.Errorf("Acquire() across a suspend, of a lock expired for seconds = %v; want nil", err)
			}
		})
	}
}

// TestHolderResamplesOnSSHFS: a holder that refreshes takes a new sample
// of the filesystem's clock once its last is stampRenewal old, also where
// setting times teaches nothing (sshfs): otherwise its bounds widen by
// the drift allowed for, 2 ms a second, for as long as it holds the lock,
// and the expiries it writes drift that far ahead (issue 11).
func TestHolderResamplesOnSSHFS(t *testing.T) {
	for name, dir := range timeBaseDirs() {
		t.Run(name, func(t *testing.T) {
			clk := newSetClock()
			l := newLock(t, filepath.Join(dir(t), "app.lck"), clk.options(WithLifetime(time.Minute))...)
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				first := l.tb.cur
				clk.ahead.Add(int64(stampRenewal + time.Second))
				if err := l.Refresh(0); err != nil {
					t.Fatal(err)
				}
				if l.tb.cur == first {
					t.Fatalf("Refresh() with a sample %v old took no new one (change times copied: %v)", stampRenewal+time.Second, l.tb.ctimeCopy)
				}
			}
		})
	}
}

// TestInspectOnlyLockResamples: a Lock that only inspects and breaks (a
// cleaner, a monitor) takes a new sample once its last is stale: after a
// suspend its run clock did not count, it reports and breaks a lock that
// expired during the suspend. Sampled once, its lower bound lagged by the
// suspend for good (issue 11).
func TestInspectOnlyLockResamples(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 7 s of real time for lifetimes to pass: runs without -short (.ci/test)")
	}
	for name, dir := range timeBaseDirs() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir(t), "app.lck")
			clk := newSetClock()
			c := newLock(t, path, clk.options(WithClockSlop(time.Second))...)
			if _, err := c.Inspect(); err != nil { // samples
				t.Fatal(err)
			}
			h := newLock(t, path, WithLifetime(time.Second))
			if err := h.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			// h dies holding the lock, and c's machine sleeps until the
			// lock has expired, and the slop has passed, by seconds: the
			// whole-second stamps of sshfs make the bounds a second wider
			// on both sides (h's expiry later, c's lower bound earlier),
			// and c waits out up to two more seconds where its mount
			// shows a whole second (cutBy).
			clk.freeze()
			time.Sleep(7 * time.Second)
			st, err := c.Inspect()
			if err != nil || !st.Expired {
				t.Errorf("Inspect() of a lock expired seconds ago = Expired %v, %v; want true", st.Expired, err)
			}
			if ok, err := c.Break(false); !ok || err != nil {
				t.Errorf("Break(false) of a lock expired seconds ago = %v, %v; want true, nil", ok, err)
			}
		})
	}
}

// TestLearnTimeLeavesNothing: the samples that Inspect and Break take,
// first and renewed, leave nothing behind and do not touch the lock file.
func TestLearnTimeLeavesNothing(t *testing.T) {
	for name, dir := range timeBaseDirs() {
		t.Run(name, func(t *testing.T) {
			dir := dir(t)
			path := filepath.Join(dir, "app.lck")
			h := newLock(t, path)
			if err := h.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				clk := newSetClock()
				l := newLock(t, path, clk.options()...)
				for j := range 3 {
					first := l.tb.cur
					if i%2 == 0 {
						_, err = l.Inspect()
					} else {
						_, err = l.Break(false)
					}
					if err != nil {
						t.Fatal(err)
					}
					if l.tb.cur == first {
						t.Fatalf("call %d of Lock %d with a sample %v old took no new one", j, i, stampRenewal+time.Second)
					}
					clk.ahead.Add(int64(stampRenewal + time.Second))
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			after, err := os.Stat(path)
			if err != nil || !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
				t.Errorf("the lock file changed: %v, %v; was %v", after, err, before)
			}
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			for _, name := range testenv.Names(t, dir) {
				t.Errorf("left behind: %s", name)
			}
		})
	}
}

// TestSystemRunClock: where the system has a clock that counts suspends,
// the run clock reads it, and it goes on as Go's monotonic clock does
// while the machine is awake.
func TestSystemRunClock(t *testing.T) {
	start := time.Now()
	r0, ok := systemRunClock(time.Now())
	if !ok {
		t.Skipf("no clock that counts suspends on %s: the run clock is Go's monotonic clock", runtime.GOOS)
	}
	time.Sleep(20 * time.Millisecond)
	r1, _ := systemRunClock(time.Now())
	took := time.Since(start)
	if r1-r0 < 20*time.Millisecond || r1-r0 > took {
		t.Errorf("the run clock went on %v across a sleep of 20ms that took %v", r1-r0, took)
	}
	l := newLock(t, filepath.Join(testenv.TempDir(t), "app.lck"))
	if r2, r3 := l.read().run, l.read().run; r2 < r1 || r3 < r2 {
		t.Errorf("a Lock with the system's clock read its run clock as %v, then %v, after %v", r2, r3, r1)
	}
}
