package flock

import (
	"context"
	"path/filepath"
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
}

func (f stallFile) SetTimes(t time.Time) error {
	if f.s.on.CompareAndSwap(true, false) {
		close(f.s.entered)
		<-f.s.release
	}
	return f.File.SetTimes(t)
}

// TestReviewKeepAliveStalledRefreshReportsNoLoss (review of how nfsflock
// judges time): a holder's keep-alive refreshes on schedule, and the
// refresh's write of the new expiry stalls (a network filesystem that
// stopped answering; a hard NFS mount blocks such a call for as long as
// the server is away). The holder's own clock then passes its expiry, and
// the slop: by its own judgement (leaseOver) the lease is over, and
// another process, whose filesystem calls do answer, breaks the lock and
// takes it. The work under KeepAlive's context (guard.WithLock's fn runs
// under it) goes on all the same: the context is cancelled only when the
// stalled call returns, however long after the lease ended, because the
// keeper judges the lease only between refreshes and a refresh holds it.
// The documentation promises the keep-alive looks at least every second
// and that a lease over is looked at at once; the keeper knows the expiry
// and the clock, and needs no filesystem call to know the lease is over.
func TestReviewKeepAliveStalledRefreshReportsNoLoss(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := newOffClock()
	st := &stall{entered: make(chan struct{}), release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(st.release)
		}
	}()
	fs := &fsystest.Faulty{FS: fsys.OS, OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return stallFile{File: f, s: st}, nil
	}}
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
	close(st.release)
	released = true
	<-kctx.Done()
	t.Logf("once the stalled call returned: %v", context.Cause(kctx))
}

// TestReviewBreakerPausedWhileRecheckingClockSetBackMovesNothing is
// TestBreakerPausedWhileRecheckingMovesNothing with a wall clock set back
// during the breaker's pause (an NTP step): the breaker pauses 2 s while
// it reads the lock file again (its run clock, CLOCK_BOOTTIME, counts the
// 2 s), and its wall clock is stepped back 1.5 s meanwhile, so that it
// shows 0.5 s more. The holder released the instance the breaker read and
// another process took the lock during the pause. The breaker bounds
// that re-read by recheckMax (0.8 s) so that it never moves a lock taken
// by an acquirer that stopped waiting for it (outwaitMax, 1 s, by Go's
// monotonic clock); but it measures the re-read by the wall clock alone
// (protocol.go, breakLocked: now.Sub(start) of l.now()), which the step
// shortened to 0.5 s, and moves the fresh lock file aside.
func TestReviewBreakerPausedWhileRecheckingClockSetBackMovesNothing(t *testing.T) {
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

// TestReviewLongLifetimeOnSSHFS: a lifetime that New accepts (up to
// MaxLifetime, 100 years) gives an expiry past 2106-02-07, which sshfs
// (SFTP version 3 carries file times as 32-bit unsigned seconds) stores
// wrapped around, in 1990. The holder reads the stored expiry back, finds
// its lease over at once, and starts afresh: an uncontended Acquire never
// succeeds and waits until its context ends (forever without a timeout),
// each attempt leaving a lock file that others see as expired since
// 1990. Nothing says why. (ext4 and XFS without bigtime clamp a late time
// to 2038 or 2446 instead: still far ahead, so the lock is held.)
func TestReviewLongLifetimeOnSSHFS(t *testing.T) {
	a, _ := testenv.SSHFS(t)
	l := newLock(t, filepath.Join(a, "app.lck"), WithLifetime(MaxLifetime))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.Acquire(ctx)
	if err != nil && ctx.Err() != nil {
		st, _ := l.Inspect()
		t.Errorf("Acquire() of a free lock with lifetime %v (New accepts up to MaxLifetime) = %v: it never took the lock; the lock file's expiry as sshfs stored it is %v, state %v", MaxLifetime, err, st.Expiry, st.State)
	}
}
