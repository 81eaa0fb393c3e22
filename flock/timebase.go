package flock

import (
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/retry"
)

// The time base: a Lock writes and judges expiries in the filesystem's
// time, the clock that stamps files in the lock's directory (on a network
// filesystem, the server's), so that hosts whose clocks disagree still
// agree on when a lock expires. It learns that clock from what the
// protocol already does: the server stamps a file's change time when the
// claim's times are set through its descriptor, and its modification time
// when the claim is written without explicit times, and the fstat that
// follows reads the stamp back. The Lock's clock readings before the
// change and after the fstat bracket the moment of the stamp, which bounds
// the filesystem's now at any later moment from below and from above.
// Every judgement takes the side of those bounds that is safe: another's
// lock is expired only once it is by the earliest time the filesystem's
// clock can show; our own lease is over once it is by the latest. doc.go
// (Clock slop) says where the stamps are usable.

// stampGrain is how much later than a stamp with a fraction of a second
// the moment it stands for may have been: Linux stamps files with a coarse
// clock, which lags by up to a scheduler tick (4 ms at HZ=250, 10 ms at
// HZ=100). A stamp of whole seconds may be cut to the second, as sshfs's
// are.
const stampGrain = 20 * time.Millisecond

// driftPerSecond bounds how fast the filesystem's clock and the Lock's
// clock drift apart between two samples (1000 ppm, twice what NTP slews).
const driftPerSecond = time.Millisecond

// A reading is one reading of the Lock's clocks: its wall clock, which
// someone may set (an NTP step, settimeofday), and its run clock, which
// no one sets and which goes on while the machine is suspended:
// CLOCK_BOOTTIME on Linux, CLOCK_MONOTONIC on Apple's systems (both count
// suspends), and elsewhere, or with a clock of [WithClock], the time the
// clock gives since the Lock first read it, by Go's monotonic reading
// where the clock has one. The bounds on the filesystem's clock are
// carried from sample to now by the run clock alone, so that a wall clock
// set since moves neither; the keep-alive waits by it too (keepalive.go).
type reading struct {
	wall time.Time
	run  time.Duration
}

// read reads the Lock's clocks.
func (l *Lock) read() reading {
	wall := l.cfg.clock.Now()
	return reading{wall: wall, run: l.runAt(wall)}
}

// runAt returns the run clock's reading at the moment wall, just read
// from the Lock's clock, was read.
func (l *Lock) runAt(wall time.Time) time.Duration {
	if l.cfg.runClock != nil {
		return l.cfg.runClock()
	}
	if l.cfg.clock == retry.SystemClock {
		if run, ok := systemRunClock(wall); ok {
			return run
		}
	}
	l.tb.mu.Lock()
	defer l.tb.mu.Unlock()
	if l.tb.epoch.IsZero() {
		l.tb.epoch = wall
	}
	return wall.Sub(l.tb.epoch)
}

// runStops reports whether the Lock's run clock may stop while the machine
// sleeps: Go's monotonic reading, where the system has no clock that
// counts suspends. Bounds carried by it then take the wall clock's count
// too where that is the safe side (stampSample.bounds).
func (l *Lock) runStops() bool {
	if l.cfg.runClock != nil {
		return l.cfg.runStops
	}
	return l.cfg.clock == retry.SystemClock && !systemRunCountsSuspend
}

// since returns how long before now r was read, by the run clock or by
// the wall clock where that says longer (a run clock of Go's monotonic
// reading stops while the machine is suspended), and whether the two
// agree within clocksDisagree. They disagree once someone set the wall
// clock, or after a suspend that the run clock did not count; bounds
// carried across that by such a run clock lag the filesystem's clock.
func (r reading) since(now reading) (age time.Duration, agree bool) {
	byRun, byWall := now.run-r.run, now.wall.Round(0).Sub(r.wall.Round(0))
	return max(byRun, byWall), (byWall - byRun).Abs() <= clocksDisagree
}

// clocksDisagree is how far the run clock and the wall clock may disagree
// on the time since a sample before the Lock takes another (sampleStale).
const clocksDisagree = time.Second

// bracketDisagree is how far they may disagree on the few milliseconds of
// one sample's bracket (observe): NTP slews the wall clock by 0.5 ms a
// second at most.
const bracketDisagree = 20 * time.Millisecond

// A stampSample is one reading of the filesystem's clock: stamp was
// stamped between the Lock's clock readings before and after.
type stampSample struct {
	before, after reading
	stamp         time.Time
	grain         time.Duration
}

// bounds returns the earliest and latest the filesystem's clock can show
// at the Lock's clock reading now. The time since the sample is taken by
// the run clock, which no one sets: a wall clock stepped forward since
// would otherwise push the upper bound, and the expiries written by it,
// that far ahead, and one set back would hold the lower bound back. The
// filesystem's clock never runs back from a stamp it gave.
func (s stampSample) bounds(now reading, runStops bool) (lo, hi time.Time) {
	sinceAfter := now.run - s.after.run
	sinceBefore := now.run - s.before.run
	if runStops {
		// A run clock that stopped while the machine slept says less
		// time passed than did; a wall clock set forward, more. Where
		// the two cannot be told apart, each bound takes its safe side.
		sinceAfter = min(sinceAfter, now.wall.Round(0).Sub(s.after.wall.Round(0)))
		sinceBefore = max(sinceBefore, now.wall.Round(0).Sub(s.before.wall.Round(0)))
	}
	drift := time.Duration(max(sinceBefore, 0) / time.Second * driftPerSecond)
	lo = s.stamp.Add(max(sinceAfter, 0) - drift)
	hi = s.stamp.Add(s.grain + max(sinceBefore, 0) + drift)
	return lo, hi
}

// timeBase is what a Lock knows of the filesystem's clock: its last two
// samples, whose bounds it joins when they were taken close together, so
// that one sample taken across a clock change, or a stamp that lies,
// widens the bounds rather than moves them.
type timeBase struct {
	mu         sync.Mutex
	cur, prev  *stampSample
	ctimeKnown bool      // whether a change time after setting times was seen
	ctimeCopy  bool      // it was a copy of the modification time (sshfs), not a stamp
	epoch      time.Time // the first reading of a run clock that is the Lock's clock
}

// fsNow returns the earliest and latest the filesystem's clock can show
// now, widened to include the Lock's clock. Without a usable sample both
// are the Lock's clock.
func (l *Lock) fsNow() (lo, hi time.Time) {
	now := l.read()
	lo, hi = l.fsBounds(now)
	// Never less safe than this host's own clock: where some mount stamps
	// files with its client's clock, its Locks judge in that clock, and a
	// Lock judging in the server's alone could break their live locks
	// (seed 3000077 of the adversarial review). The cost is waiting: a
	// host whose clock is off waits that much longer to break.
	wall := now.wall.Round(0)
	return minTime(lo, wall), maxTime(hi, wall)
}

// fsBounds returns the earliest and latest the filesystem's clock can
// show at now, by the samples alone: the last one's bounds, joined with
// the one before if that was taken within stampRenewal of it, and the
// clocks agree on the time between. An older one says less than the
// last, and one from before a suspend that a run clock of Go's monotonic
// reading did not count lags. Without a usable sample both are the
// Lock's clock.
func (l *Lock) fsBounds(now reading) (lo, hi time.Time) {
	l.tb.mu.Lock()
	cur, prev := l.tb.cur, l.tb.prev
	l.tb.mu.Unlock()
	if cur == nil || l.timeBaseOff() {
		return now.wall.Round(0), now.wall.Round(0)
	}
	stops := l.runStops()
	lo, hi = cur.bounds(now, stops)
	if prev == nil {
		return lo, hi
	}
	if age, agree := prev.after.since(cur.after); age <= stampRenewal && agree {
		plo, phi := prev.bounds(now, stops)
		lo, hi = minTime(lo, plo), maxTime(hi, phi)
	}
	return lo, hi
}

// timeBaseOff reports whether the Lock judges by its own clock alone, as
// before the time base: only tests that show what it prevents say so.
func (l *Lock) timeBaseOff() bool { return l.cfg.noTimeBase || mutated("no-time-base") }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// expiryIn returns the expiry to write for a lease of d from now: d after
// the latest the filesystem's clock can show, so that the lease, as this
// Lock judges it (leaseOver), lasts d. Where the filesystem was seen to
// cut file times to the second (sshfs), or to two (FAT), it is rounded up
// to the next such time, so that the stored lease still lasts d: cut, a
// lifetime of a second would leave between nothing and a second.
func (l *Lock) expiryIn(d time.Duration) time.Time {
	_, hi := l.fsNow()
	e := hi.Add(d)
	var grain time.Duration
	switch {
	case l.cut2.Load():
		grain = 2 * time.Second
	case l.cutTimes.Load():
		grain = time.Second
	}
	if c := e.Truncate(grain); grain > 0 && c.Before(e) {
		e = c.Add(grain)
	}
	return e
}

// noteCut learns from expiry, as written, and stored, as the filesystem
// stored it, whether it cuts times to the second: only from a cut of a
// fraction that a finer grain (exFAT's 10 ms, Windows's 100 ns) would
// have kept, not from a time that merely fell on a second.
func (l *Lock) noteCut(expiry, stored time.Time) {
	if stored.Equal(expiry.Truncate(time.Second)) && expiry.Sub(stored) >= 50*time.Millisecond && !l.cutTimes.Load() {
		l.cutTimes.Store(true)
	}
	if stored.Equal(expiry.Truncate(2*time.Second)) && !stored.Equal(expiry.Truncate(time.Second)) && !l.cut2.Load() {
		l.cut2.Store(true) // an odd second cut off: FAT's grain
	}
}

// storedLease returns the lease that expiry, as the filesystem stored it,
// gave when it was written at the reading written: the lifetime, or less
// where the filesystem cut it.
func (l *Lock) storedLease(written reading, expiry time.Time) time.Duration {
	_, hi := l.fsBounds(written)
	return min(l.lifetime, expiry.Sub(hi))
}

// leaseOver reports whether our own lease that ends at expiry may be over:
// whether the filesystem's clock may show expiry already.
func (l *Lock) leaseOver(expiry time.Time) bool {
	_, hi := l.fsNow()
	return !hi.Before(expiry)
}

// leaseLeft returns how long our own lease that ends at expiry surely
// lasts, by the Lock's clock; 0 or less once it may be over.
func (l *Lock) leaseLeft(expiry time.Time) time.Duration {
	_, hi := l.fsNow()
	return expiry.Sub(hi)
}

// expiredBy reports whether another's expiry, and then grace, have surely
// passed: by the earliest the filesystem's clock can show.
func (l *Lock) expiredBy(info fsys.Info, grace time.Duration) bool {
	lo, _ := l.fsNow()
	return lo.After(info.ModTime.Add(l.cutBy(info) + grace))
}

// cutBy returns how much later than its modification time, as read here,
// the expiry of another's file with attributes info may have been written:
// a whole second may be a cut, by up to a second, or two on an even second
// (FAT's grain), unless the modification time shows a fraction. Its change
// time cannot say that no cut was made: this host's mount may show it as
// the server stamped it while the holder's mount showed its own expiry
// finer than the server kept it (a FUSE writeback cache over SFTP keeps
// the times it set; TestReviewFineHolderCutStoreBrokenByFineBreaker), and
// a mount may show ours as it set them and others' cut
// (TestReviewBreakerFineOwnViewWaitsOutCut). A breaker waits out the
// difference, which the clock slop need not cover.
func (l *Lock) cutBy(info fsys.Info) time.Duration {
	switch {
	case info.ModTime.Nanosecond() != 0 || mutated("no-cut-allowance"):
		return 0
	case info.ModTime.Unix()%2 == 0:
		return 2 * time.Second
	}
	return time.Second
}

// aheadBy returns how far expiry lies ahead of the filesystem's now at
// the least.
func (l *Lock) aheadBy(expiry time.Time) time.Duration {
	_, hi := l.fsNow()
	return expiry.Sub(hi)
}

// clockOffset returns the filesystem's clock minus the Lock's clock, the
// middle of the bounds, and whether a sample gave it.
func (l *Lock) clockOffset() (time.Duration, bool) {
	l.tb.mu.Lock()
	known := l.tb.cur != nil
	l.tb.mu.Unlock()
	if !known || l.timeBaseOff() {
		return 0, false
	}
	now := l.read()
	lo, hi := l.fsBounds(now)
	return lo.Sub(now.wall.Round(0)) + hi.Sub(lo)/2, true
}

// observeWrite learns from a file just written without explicit times,
// whose attributes info were read after it, all since the Lock's clock
// read before: its modification time is the filesystem's stamp.
func (l *Lock) observeWrite(before reading, info fsys.Info) {
	l.observe(before, info.ModTime)
}

// observeTimes learns from a file whose times were just set explicitly to
// set through its descriptor, and whose attributes info were read after
// it, all since before: its change time is the filesystem's stamp, unless
// the filesystem reports a copy of the modification time there (sshfs).
// Attributes that do not show the times just set (up to 2 s less, as
// coarse filesystems store them) came from a cache older than the change,
// and their change time, older than before, would put the upper bound too
// early: they teach nothing. It reports whether the change time was used.
func (l *Lock) observeTimes(before reading, info fsys.Info, set time.Time) bool {
	if info.ModTime.After(set) || !info.ModTime.After(set.Add(-2*time.Second)) {
		return false
	}
	copied := info.ChangeTime.IsZero() || info.ChangeTime.Equal(info.ModTime)
	l.tb.mu.Lock()
	first := !l.tb.ctimeKnown
	l.tb.ctimeKnown, l.tb.ctimeCopy = true, copied
	l.tb.mu.Unlock()
	if copied {
		if first {
			l.cfg.logger.Debug("flock: the filesystem's change times do not stamp setting the times; the time base is learned when claims are written", "dir", l.dir)
		}
		// A waiter that keeps its claim, and a holder that refreshes,
		// write no new claims: they renew a stale sample here, for the
		// next expiry they write or judge.
		l.learnTime()
		return false
	}
	l.observe(before, info.ChangeTime)
	return true
}

// writeStampNeeded reports whether a new claim must be written without
// explicit times and read back before its times are set, which costs an
// fstat more: while the Lock has no sample, and where the filesystem's
// change times are copies (sshfs) once its sample is stale.
func (l *Lock) writeStampNeeded() bool {
	if l.timeBaseOff() {
		return false
	}
	l.tb.mu.Lock()
	known, copied := l.tb.cur != nil, l.tb.ctimeCopy
	l.tb.mu.Unlock()
	return !known || copied && l.sampleStale(l.read())
}

// stampRenewal is how old a sample may grow before the Lock takes another
// where it would not otherwise (where only a claim's write gives one, and
// for a Lock that only inspects and breaks): the bounds widen with the
// drift allowed for (driftPerSecond), 30 ms in this time.
const stampRenewal = 30 * time.Second

// wideBounds is how far apart the bounds may lie, once the sample is a few
// seconds old, before the Lock takes another: a sample whose fstat took
// long says little.
const wideBounds = 2 * time.Second

// sampleStale reports whether the Lock has no sample, or one older than
// stampRenewal by the run clock or the wall clock, or one since which the
// two clocks disagree, or bounds that lie wide apart.
func (l *Lock) sampleStale(now reading) bool {
	l.tb.mu.Lock()
	cur := l.tb.cur
	l.tb.mu.Unlock()
	if cur == nil {
		return true
	}
	age, agree := cur.after.since(now)
	if age > stampRenewal || !agree {
		return true
	}
	lo, hi := l.fsBounds(now)
	return age > 5*time.Second && hi.Sub(lo) > wideBounds
}

// observe learns from stamp, which the filesystem stamped after the
// Lock's clock read before and before it reads it now. before was read
// without the run clock (by the protocol's callers, in time.Time): its run
// reading is now's, less the time between the two by Go's monotonic
// reading or the wall clock, whichever says longer, so that a suspend, or
// a wall clock stepped forward, in those few milliseconds widens the
// bounds rather than narrows them.
func (l *Lock) observe(before reading, stamp time.Time) {
	if l.timeBaseOff() {
		return
	}
	after := l.read()
	if stamp.IsZero() {
		l.noTimeBase("the filesystem reports no file times")
		return
	}
	if byRun, byWall := after.run-before.run, after.wall.Round(0).Sub(before.wall.Round(0)); (byRun - byWall).Abs() > bracketDisagree {
		// The clocks disagree on how long the bracket took: the machine
		// was suspended, or the wall clock set, between the reading of
		// one clock and the other's (a reading pairs a wall clock from
		// before with a run clock from after), and the bracket may not
		// hold the stamp. It teaches nothing (review of the time base:
		// a suspend there put the upper bound behind by its length).
		return
	}
	s := &stampSample{before: before, after: after, stamp: stamp, grain: stampGrain}
	if stamp.Nanosecond() == 0 {
		s.grain = time.Second
	}
	l.tb.mu.Lock()
	l.tb.prev, l.tb.cur = l.tb.cur, s
	l.tb.mu.Unlock()
	l.warnSkew()
}

// noTimeBase logs, once per directory and process, that the Lock judges
// by its own clock.
func (l *Lock) noTimeBase(why string) {
	if firstFor(&timeLogs.fallback, l.dir) {
		l.cfg.logger.Debug("flock: no usable filesystem time; expiries are judged by this host's clock", "dir", l.dir, "why", why)
	}
}

// warnSkew logs, once per directory and process, that this host's clock
// differs from the filesystem's by more than the clock slop.
func (l *Lock) warnSkew() {
	now := l.read()
	lo, hi := l.fsBounds(now)
	if wall := now.wall.Round(0); lo.Sub(wall) <= l.cfg.slop && wall.Sub(hi) <= l.cfg.slop {
		return
	}
	if firstFor(&timeLogs.skew, l.dir) {
		off, _ := l.clockOffset()
		l.cfg.logger.Warn("flock: this host's clock differs from the filesystem's by more than the clock slop; expiries are written and judged in the filesystem's time",
			"dir", l.dir, "offset", off.Round(time.Millisecond), "slop", l.cfg.slop)
	}
}

// timeLogs records, per directory, which once-per-process log lines of the
// time base were written.
var timeLogs struct {
	sync.Mutex
	fallback, skew map[string]bool
}

func firstFor(m *map[string]bool, dir string) bool {
	timeLogs.Lock()
	defer timeLogs.Unlock()
	if (*m)[dir] {
		return false
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[dir] = true
	return true
}

// learnTime takes a sample by writing a file of our own beside the lock
// file and removing it, when the Lock's sample is stale (sampleStale) or
// missing: for a Lock that must judge an expiry before it has written
// anything (Inspect, Break), one that only ever inspects and breaks, one
// that slept through a suspend, and where setting times teaches nothing
// (sshfs) for waiters and holders. A Lock that may not write there judges
// by its own clock.
func (l *Lock) learnTime() {
	if l.timeBaseOff() || !l.sampleStale(l.read()) {
		return
	}
	var (
		name   string
		before reading
		f      fsys.File
		err    error
	)
	// A lost reply can make a create look refused: the name is ours
	// alone, so what stands there is our own file, and is removed.
	for range 3 {
		name = l.freshName()
		before = l.read()
		f, err = l.cfg.fs.Create(name, []byte(name), time.Time{})
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		if rerr := l.cfg.fs.Remove(name); rerr != nil && !gone(rerr) {
			l.cfg.logger.Warn("flock: removing a file at a fresh name", "path", name, "err", rerr)
		}
	}
	if err != nil {
		l.noTimeBase("cannot write beside the lock file: " + err.Error())
		return
	}
	if info, err := f.Stat(); err == nil {
		l.observeWrite(before, info)
	}
	f.Close()
	if err := l.cfg.fs.Remove(name); err != nil && !gone(err) {
		l.cfg.logger.Warn("flock: removing the file that measured the filesystem's clock", "path", name, "err", err)
	}
}
