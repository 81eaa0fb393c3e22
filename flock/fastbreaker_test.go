//go:build unix

package flock

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// breakStage makes a lock file that expired an hour ago, and returns its
// path, the breakers' lock's, and a maker of Locks on it (lifetime 5 s,
// slop 1 s, and opts), closed at the test's end.
func breakStage(t *testing.T) (path, breakers string, newLock func(opts ...Option) *Lock) {
	t.Helper()
	return breakStageIn(t, t.TempDir())
}

// breakStageIn is breakStage in dir.
func breakStageIn(t *testing.T, dir string) (path, breakers string, newLock func(opts ...Option) *Lock) {
	t.Helper()
	path = filepath.Join(dir, "app.lck")
	writeAt(t, path, time.Now().Add(-time.Hour))
	return path, path + ".break", func(opts ...Option) *Lock {
		t.Helper()
		l, err := New(path, append([]Option{WithLifetime(5 * time.Second), WithClockSlop(time.Second)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
}

// takeInPutBackGap has w try the lock, reporting through ok, whenever f
// renames a file back to path without replacing while armed reports
// true: the moment a breaker that moved the lock file aside, and found it
// was not the instance it judged, leaves the lock path free.
func takeInPutBackGap(f *fsystest.Faulty, path string, armed func() bool, w *Lock, ok *bool) {
	f.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == path && armed() {
			*ok, _ = w.TryAcquire()
		}
		return next(o, n)
	}
}

// writeAt writes a claim-shaped file at path with the expiry at.
func writeAt(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(path+"|elsewhere|4242|1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

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
	fastBreakerJudged(t, time.Minute, 0)
}

// fastBreakerJudged stages a breaker whose clock runs fast ahead, held in
// its link of the breakers' lock while a Lock whose clock runs judge ahead
// (behind, if negative) tries the lock. It fails the test if the judge
// takes the lock (breaking the live breaker's lock as planted), or if the
// breaker does not.
func fastBreakerJudged(t *testing.T, fast, judge time.Duration) {
	t.Helper()
	_, breakers, newLock := breakStage(t)
	fsF := &fsystest.Faulty{FS: fsys.OS}
	var judgeClock []Option // a right judge keeps the system's clock, and shares its sightings
	if judge != 0 {
		judgeClock = []Option{WithClock(aheadClock{judge})}
	}
	breaker, right := newLock(WithClock(aheadClock{fast}), withFS(fsF)), newLock(judgeClock...)
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
	ok, err := breaker.TryAcquire()
	if !staged {
		t.Fatal("the fast breaker took no breakers' lock: nothing was staged")
	}
	t.Logf("the fast breaker's breakers' lock expired %v ahead of the filesystem's clock", ahead.Round(time.Millisecond))
	if rightOK || rightErr != nil {
		t.Errorf("TryAcquire() of a Lock %v off, while a breaker %v fast held the breakers' lock = %v, %v; want false, nil: it broke a live breaker's lock as planted", judge, fast, rightOK, rightErr)
	}
	if !ok || err != nil {
		t.Errorf("the fast breaker's TryAcquire() = %v, %v; want true, nil", ok, err)
	}
}

// shiftedClocks are a Lock's wall clock and run clock, each the system's
// plus an offset the test moves, to stand for time passing (both) and for
// a wall clock stepped by NTP (the wall's alone).
type shiftedClocks struct{ wall, run atomic.Int64 }

func (c *shiftedClocks) Now() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.wall.Load()))
}
func (c *shiftedClocks) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// pass stands for d passing.
func (c *shiftedClocks) pass(d time.Duration) { c.wall.Add(int64(d)); c.run.Add(int64(d)) }

func (c *shiftedClocks) options() []Option {
	start := time.Now()
	return []Option{WithClock(c), withRunClock(func() time.Duration { return time.Since(start) + time.Duration(c.run.Load()) })}
}

// TestFastBreakerSteppedBackMovesNothing: a breaker whose clock runs a
// minute fast holds the breakers' lock, a minute ahead, and pauses for
// 11 s, while NTP steps its wall clock back to the right time. A Lock of
// a right clock that saw the breakers' lock at the start of the pause has
// seen it unchanged for a breaker's lease and the slop by its end, and
// breaks it, and takes the lock. The breaker's lease by the upper bound
// on the filesystem's clock, which the step brought back to the
// filesystem's, would run on to the far expiry; by its run clock it ended
// 5 s after it set the expiry (breakLeaseOver), so it moves nothing.
// Without that, it moved the new holder's lock file aside and a third
// process linked in the gap: two holders (the seventh review). Time
// passes through the clocks, not by sleeping.
func TestFastBreakerSteppedBackMovesNothing(t *testing.T) {
	fastBreakerPaused(t, false)
}

// fastBreakerPaused stages a breaker a minute fast, paused for 11 s in its
// link of the breakers' lock (suspended, where its run clock stops in a
// suspend: it counts none of the pause), its wall clock stepped back a
// minute meanwhile, while a Lock of a right clock comes by at the start of
// the pause and again just before the breaker's move of the lock file,
// and a third in the gap the move would open. It fails the test if the
// breaker moves the lock file.
func fastBreakerPaused(t *testing.T, suspended bool) {
	path, breakers, newLock := breakStage(t)
	var bClocks, cClocks shiftedClocks
	bClocks.wall.Store(int64(time.Minute))
	start := time.Now()
	var stopped atomic.Int64 // the time the breaker's run clock did not count
	run := func() time.Duration {
		return time.Since(start) + time.Duration(bClocks.run.Load()) - time.Duration(stopped.Load())
	}
	runClock := withRunClock(run)
	if suspended {
		runClock = withStoppingRunClock(run)
	}
	fsB := &fsystest.Faulty{FS: fsys.OS}
	b := newLock(WithClock(&bClocks), runClock, withFS(fsB))
	c, d := newLock(cClocks.options()...), newLock()
	const pause = 11 * time.Second // more than breakTTL and the slop (5 s + 5 s)
	var (
		linked, moved bool
		cFirst        bool
		cOK, dOK      bool
	)
	fsB.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == breakers && err == nil && !linked {
			linked = true
			cFirst, _ = c.TryAcquire() // first sight: left alone
			bClocks.pass(pause)
			if suspended {
				stopped.Add(int64(pause))
			}
			bClocks.wall.Add(int64(-time.Minute)) // NTP's step
			cClocks.pass(pause)
		}
		return err
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !moved {
			moved = true
			cOK, _ = c.TryAcquire()
			err := next(o, n)
			dOK, _ = d.TryAcquire()
			return err
		}
		return next(o, n)
	}
	bOK, bErr := b.TryAcquire()
	if !linked {
		t.Fatal("the fast breaker took no breakers' lock: nothing was staged")
	}
	if cFirst {
		t.Fatal("the Lock of a right clock broke the live breaker's lock at first sight")
	}
	if moved {
		t.Errorf("the breaker, paused past its 5 s lease (suspended: %v) and its fast wall clock stepped back, moved the lock file (the next holder's: %v; a third process linked in the gap: %v)", suspended, cOK, dOK)
	}
	if bOK {
		t.Errorf("the breaker's TryAcquire() = true, %v; want false: its lease on the breakers' lock ran out in its pause", bErr)
	}
}

// TestFarSightingsShared: a Lock made for one acquisition (as guard makes
// them) never sees a far-ahead breakers' lock long enough to break it by
// its own sightings, and each would wait out outwaitBreaker beside it, for
// as long as it stands (the seventh review). The Locks of a process on the
// system's clocks share their sightings: a new Lock, 11 s after another
// first saw the file (on the process's monotonic clock, moved here by the
// test), breaks it. A Lock of a larger slop in between, for which the file
// is not far ahead, leaves the sighting alone (the eighth review: it reset
// it, and the next Lock started over).
func TestFarSightingsShared(t *testing.T) {
	_, breakers, newLock := breakStage(t)
	writeAt(t, breakers, time.Now().Add(20*time.Second))
	var passed atomic.Int64
	real := sinceMonoStart
	sinceMonoStart = func() time.Duration { return real() + time.Duration(passed.Load()) }
	defer func() { sinceMonoStart = real }()
	try := func(want bool, when string, opts ...Option) {
		t.Helper()
		l := newLock(opts...)
		defer l.Close()
		if ok, err := l.TryAcquire(); ok != want || err != nil {
			t.Fatalf("a new Lock's TryAcquire() %s = %v, %v; want %v", when, ok, err, want)
		}
	}
	try(false, "at the first sight of the far-ahead breakers' lock")
	passed.Add(int64(5 * time.Second))
	try(false, "of a slop of 30 s, for which it is not far ahead", WithClockSlop(30*time.Second))
	passed.Add(int64(4 * time.Second))
	try(false, "9 s after another Lock first saw it")
	passed.Add(int64(2 * time.Second))
	try(true, "11 s after another Lock first saw it")
}

// TestPlantedBeyondAnHourBrokenAtOnce: a breakers' lock further ahead than
// a breaker whose clock runs an hour fast writes was planted, and is
// broken at first sight; one within that is not (it may be a live
// breaker's).
func TestPlantedBeyondAnHourBrokenAtOnce(t *testing.T) {
	for _, tt := range []struct {
		ahead  time.Duration
		breaks bool
	}{
		{time.Hour, false},
		{time.Hour + 20*time.Second, true},
		{365 * 24 * time.Hour, true},
	} {
		t.Run(tt.ahead.String(), func(t *testing.T) {
			_, breakers, newLock := breakStage(t)
			writeAt(t, breakers, time.Now().Add(tt.ahead))
			if ok, err := newLock().TryAcquire(); ok != tt.breaks || err != nil {
				t.Errorf("TryAcquire() beside a breakers' lock %v ahead = %v, %v; want %v", tt.ahead, ok, err, tt.breaks)
			}
		})
	}
}

// TestSuspendedFastBreakerSteppedBackMovesNothing: as
// TestFastBreakerSteppedBackMovesNothing, but the breaker's run clock is
// one that stops while the machine sleeps (Go's monotonic clock: the run
// clock on systems other than Linux and Apple's, runStops), and its pause
// is a suspend of 11 s, on resume from which NTP steps its minute-fast
// wall clock back. Its lease by the run clock then counts none of the
// suspend, and by the upper bound (whose wall count the step cancels)
// runs on to the far expiry; a Lock of a right clock that saw the
// breakers' lock before the suspend has seen it unchanged for a breaker's
// lease and the slop, breaks it and takes the lock, and the breaker moves
// the new holder's lock file aside: a third process links in the gap
// (the ninth review). There breakLeaseOver counts the lease over once the
// two clocks disagree.
func TestSuspendedFastBreakerSteppedBackMovesNothing(t *testing.T) {
	fastBreakerPaused(t, true)
}

// TestFastBreakerWithinTheHourIsLive: a breaker whose clock runs 59 min
// fast holds the breakers' lock (held in its link of it); a Lock whose own
// clock is right, 30 min slow or 30 min fast must not break it at first
// sight (as planted), whatever its own wall clock: both bounds take that
// clock in, and the judge's upper bound must not fall behind the
// filesystem's clock (the ninth review).
func TestFastBreakerWithinTheHourIsLive(t *testing.T) {
	for _, judge := range []time.Duration{0, -30 * time.Minute, 30 * time.Minute} {
		t.Run(judge.String(), func(t *testing.T) {
			fastBreakerJudged(t, 59*time.Minute, judge)
		})
	}
}

// TestBreakerChecksItsBreakersLockLast: a breaker looks whether the
// breakers' lock is still its own once more after it reads the lock file
// again, just before it reads the clock and moves. Whoever removes a stale
// breakers' lock (a sweep, or another breaker) moves aside whatever stands
// there by then, and a live breaker's lock too, for a moment: here S,
// which judged a dead breaker's L.break D, moves it only after U broke D
// and took L.break, and its move lands while U reads the lock file again.
// In that gap V takes L.break, breaks the expired lock and takes the lock.
// U, had it looked at L.break only before its reads (as it did), would
// move V's lock file aside, find it is not the instance it judged and put
// it back, and W, linking in that gap, would hold the lock beside V (the
// tenth review).
func TestBreakerChecksItsBreakersLockLast(t *testing.T) {
	path, breakers, newLock := breakStage(t)
	fsS, fsU := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	// Where names can be swapped in one step, S's removal never frees
	// L.break (TestBreakersLockNeverLeftFree): S's filesystem here cannot.
	fsS.OnExchange = func(_ func(string, string) error, _, _ string) error { return errors.ErrUnsupported }
	s, u, v, w := newLock(withFS(fsS)), newLock(withFS(fsU)), newLock(), newLock()
	// U has held the lock before, as a long-lived Lock has: it knows that
	// this filesystem keeps identity across names, so that its re-read
	// goes by the lock path, not through a probe link (which would see
	// V's lock file and stop it on its own, the eleventh review found).
	os.Remove(path)
	if ok, err := u.TryAcquire(); !ok || err != nil {
		t.Fatalf("U's first TryAcquire() = %v, %v", ok, err)
	}
	if err := u.Release(); err != nil {
		t.Fatal(err)
	}
	if u.ident != identityYes {
		t.Fatalf("U's identity after a hold = %v; want identityYes", u.ident)
	}
	writeAt(t, path, time.Now().Add(-time.Hour))
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	var (
		sRename       func() error
		landed        bool
		opens         int
		uMoved        bool
		vOK, wOK, uOK bool
	)
	fsS.OnRename = func(next func(string, string) error, o, n string) error {
		if o != breakers || sRename != nil {
			return next(o, n)
		}
		// S judged D; before its move lands, U breaks D and takes
		// L.break. S's move lands inside U's break.
		sRename = func() error { return next(o, n) }
		uOK, _ = u.TryAcquire()
		if landed {
			return nil
		}
		return next(o, n)
	}
	fsU.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		f, err := next(p)
		if p == path && sRename != nil && !landed {
			// U's attempt opened L once before it took L.break; this is
			// its second read of L, holding L.break.
			if opens++; opens == 2 {
				landed = true
				if err := sRename(); err != nil {
					t.Errorf("S's move of L.break: %v", err)
				}
				vOK, _ = v.TryAcquire()
			}
		}
		return f, err
	}
	fsU.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && landed {
			uMoved = true
		}
		return next(o, n)
	}
	takeInPutBackGap(fsU, path, func() bool { return true }, w, &wOK)
	if ok, err := s.TryAcquire(); err != nil {
		t.Fatalf("S's TryAcquire() = %v, %v", ok, err)
	}
	if !landed {
		t.Fatalf("not staged: S's move never landed inside U's break (U's TryAcquire = %v, its reads of L %d)", uOK, opens)
	}
	if !vOK {
		t.Fatalf("not staged: V did not take the lock in the gap")
	}
	if uMoved {
		t.Errorf("U moved the lock file after its breakers' lock was taken from it (V holds: %v, W linked in the put-back gap: %v)", vOK, wOK)
	}
	if vOK && wOK {
		t.Errorf("two holders: V and W both took the lock")
	}
}

// TestBreakersLockNeverLeftFree: whoever removes a stale breakers' lock
// must not leave its path free while it holds a file there that it has
// not judged. Here S, which judged a dead breaker's L.break D, makes its
// removal only after U broke D and took L.break, and it lands after U's
// last look at L.break, as U moves the lock file. V comes by then. Had S
// moved U's L.break aside (as it did, and still does where names cannot
// be swapped in one step), V would find the path free, take L.break,
// break the expired lock and take the lock, and give L.break up; U would
// then move V's lock file aside, find it is not the instance it judged and
// put it back, and W, linking in that gap, would hold the lock beside V:
// the race docs/RELIABILITY.md left open. On a local disk S swaps a fresh
// breakers' lock of its own in instead, so V finds a live breaker and
// waits, and U alone breaks. It runs on each local filesystem the process
// suites cover: on overlayfs, which S took for one where names cannot be
// swapped, V linked between S's move aside and its publish, and held the
// lock beside W (fsys.Swapper).
func TestBreakersLockNeverLeftFree(t *testing.T) {
	for _, fs := range testenv.Filesystems() {
		t.Run(fs.Name, func(t *testing.T) { testBreakersLockNeverLeftFree(t, fs.Dir(t)) })
	}
}

func testBreakersLockNeverLeftFree(t *testing.T, dir string) {
	path, breakers, newLock := breakStageIn(t, dir)
	fsS, fsU := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	s, u, v, w := newLock(withFS(fsS)), newLock(withFS(fsU)), newLock(), newLock()
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	var (
		sMove         func() error
		landed        bool
		uOK, vOK, wOK bool
		vErr          error
	)
	// S's removal of D: a move aside, or an exchange where the
	// filesystem swaps names. Either lands later, inside U's break.
	hold := func(move func() error) error {
		if sMove != nil {
			return move()
		}
		sMove = move
		uOK, _ = u.TryAcquire()
		if landed {
			return nil
		}
		return move()
	}
	fsS.OnRename = func(next func(string, string) error, o, n string) error {
		if o != breakers || sMove != nil {
			return next(o, n)
		}
		return hold(func() error { return next(o, n) })
	}
	fsS.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers || sMove != nil {
			return next(a, b)
		}
		return hold(func() error { return next(a, b) })
	}
	fsU.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && sMove != nil && !landed {
			// U has looked at L.break for the last time, and moves the
			// expired lock file aside: S's removal lands, and V comes.
			landed = true
			if err := sMove(); err != nil {
				t.Errorf("S's removal of L.break: %v", err)
			}
			vOK, vErr = v.TryAcquire()
		}
		return next(o, n)
	}
	takeInPutBackGap(fsU, path, func() bool { return landed }, w, &wOK)
	if ok, err := s.TryAcquire(); err != nil {
		t.Fatalf("S's TryAcquire() = %v, %v", ok, err)
	}
	if !landed {
		t.Fatalf("not staged: S's removal never landed inside U's break (U's TryAcquire = %v)", uOK)
	}
	t.Logf("took the lock: U %v, V %v (%v), W %v", uOK, vOK, vErr, wOK)
	holders := 0
	for i, l := range []*Lock{u, v, w} {
		ok, err := l.IsLocked()
		if ok {
			holders++
		}
		t.Logf("%c IsLocked() = %v, %v", "UVW"[i], ok, err)
	}
	if vOK && (uOK || wOK) || holders > 1 {
		t.Errorf("two holders (V took L.break in the gap): U %v, V %v, W %v; %d hold it now", uOK, vOK, wOK, holders)
	}
	if holders == 0 {
		t.Errorf("nobody holds the expired lock's successor")
	}
}
