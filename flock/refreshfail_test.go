//go:build unix

package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// failsOnce fails SetTimes, while armed, without setting anything.
type failsOnce struct {
	fsys.File
	armed *atomic.Bool
}

func (f *failsOnce) SetTimes(t time.Time) error {
	if f.armed.CompareAndSwap(true, false) {
		return &os.PathError{Op: "utimensat", Path: "claim", Err: syscall.EIO}
	}
	return f.File.SetTimes(t)
}

// alignHi advances clk so that the Lock's upper bound on the
// filesystem's clock lies at phase past an even second.
func alignHi(l *Lock, clk *offClock, phase time.Duration) {
	_, hi := l.fsNow()
	cur := hi.Sub(hi.Truncate(2 * time.Second))
	clk.advance((phase - cur + 4*time.Second) % (2 * time.Second))
}

// TestFailedRefreshKeepsLease: a refresh to the same lifetime whose
// write fails (EIO, nothing written) leaves the lease as it was, and the
// retry that follows succeeds. cda596b took such an error's expiry, cut to
// two seconds, for the lease whenever that lay before the old one, which
// a refresh within two seconds of the last does: a 1 s lifetime's lease
// was over at once, and the retry found the lock lost (helper 71).
func TestFailedRefreshKeepsLease(t *testing.T) {
	for _, c := range []struct {
		life, after, phase time.Duration
	}{
		{3 * time.Second, time.Second, 1500 * time.Millisecond},
		{time.Second, time.Second / 3, 500*time.Millisecond - time.Second/3},
	} {
		t.Run(c.life.String(), func(t *testing.T) {
			path := filepath.Join(testenv.TempDir(t), "app.lck")
			var armed atomic.Bool
			fs := &fsystest.Faulty{FS: fsys.OS}
			fs.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
				f, err := next(p, d, tm)
				if err != nil {
					return f, err
				}
				return &failsOnce{File: f, armed: &armed}, nil
			}
			clk := newOffClock()
			l := newLock(t, path, withFS(fs), WithClock(clk), withRunClock(clk.run), WithLifetime(c.life))
			// The time base first.
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			l.Release()
			alignHi(l, clk, c.phase)
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			old, _, _, _ := l.acq.state()
			clk.advance(c.after)
			armed.Store(true)
			err := l.Refresh(0)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Refresh = %v; want EIO", err)
			}
			now, _, _, _ := l.acq.state()
			info, _ := os.Stat(path)
			t.Logf("old lease %v, after failed same-lifetime refresh %v, lock file mtime %v", old.Format("05.000"), now.Format("05.000"), info.ModTime().Format("05.000"))
			if now.Before(old) {
				t.Errorf("a failed Refresh(0) that wrote nothing cut the lease by %v (to %v; the lock file still says %v); leaseOver now: %v", old.Sub(now), now, info.ModTime(), l.leaseOver(now))
			}
			// The retry, still well within the old lease.
			clk.advance(old.Sub(clk.Now()) / 2)
			if err := l.Refresh(0); err != nil {
				t.Errorf("the retry, %v before the old lease %v ends, = %v", old.Sub(clk.Now()), old, err)
			}
		})
	}
}

// TestKeepAliveOutlastsOneFailedRefresh: a keep-alive of a 1 s lifetime
// whose refresh fails once (EIO, nothing written) refreshes again within
// the lease and keeps the lock. With cda596b, 4 of 8 lost it (helper 71).
func TestKeepAliveOutlastsOneFailedRefresh(t *testing.T) {
	t.Parallel()
	lost := 0
	const trials = 4
	for i := 0; i < trials; i++ {
		path := filepath.Join(testenv.TempDir(t), "app.lck")
		var armed atomic.Bool
		fs := &fsystest.Faulty{FS: fsys.OS}
		fs.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
			f, err := next(p, d, tm)
			if err != nil {
				return f, err
			}
			return &failsOnce{File: f, armed: &armed}, nil
		}
		l := newLock(t, path, withFS(fs), WithLifetime(time.Second))
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		ctx, stop := l.KeepAlive(context.Background())
		select {
		case <-ctx.Done():
			lost++
			t.Logf("trial %d: keep-alive lost the lock after one transient EIO: %v", i, context.Cause(ctx))
		case <-time.After(1500 * time.Millisecond):
		}
		stop()
		l.Release()
	}
	if lost > 0 {
		t.Errorf("%d of %d keep-alives with a lifetime of 1 s lost the lock after one transient SetTimes failure", lost, trials)
	}
}

// TestKeepAliveTwoSecondGrain: on FAT's two-second times, a keep-alive of
// a 1 s lifetime keeps the lock.
func TestKeepAliveTwoSecondGrain(t *testing.T) {
	t.Parallel()
	lost := 0
	for i := 0; i < 2; i++ {
		fs := fatFS()
		path := filepath.Join(testenv.TempDir(t), "app.lck")
		l := newLock(t, path, withFS(fs), WithLifetime(time.Second), WithTimeout(10*time.Second))
		start := time.Now()
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("trial %d: acquired in %v, cut2=%v cutTimes=%v", i, time.Since(start), l.cut2.Load(), l.cutTimes.Load())
		ctx, stop := l.KeepAlive(context.Background())
		select {
		case <-ctx.Done():
			lost++
			t.Logf("trial %d: lost: %v", i, context.Cause(ctx))
		case <-time.After(3 * time.Second):
		}
		stop()
		l.Release()
	}
	if lost > 0 {
		t.Errorf("%d of 2 keep-alives lost the lock on FAT with lifetime 1 s", lost)
	}
}

// landsThenStalls sets the times, and then, while armed, blocks until
// released: the server carried the call out, its reply is late.
type landsThenStalls struct {
	fsys.File
	armed   *atomic.Bool
	landed  chan struct{}
	release chan struct{}
}

func (f *landsThenStalls) SetTimes(t time.Time) error {
	err := f.File.SetTimes(t)
	if f.armed.CompareAndSwap(true, false) {
		close(f.landed)
		<-f.release
	}
	return err
}

// TestShorterRefreshStuckAfterItsWrite: a holder with a keep-alive
// refreshes a minute's lease to 1 s; the write lands, and its reply is
// late (a hard NFS mount). Another process breaks the lock by the new
// expiry and takes it. The holder's keep-alive context stayed live, its
// lease judged by the old expiry until the call returned (helper 71):
// the new, shorter expiry is the lease as soon as it is sent.
func TestShorterRefreshStuckAfterItsWrite(t *testing.T) {
	const life, short, slop = time.Minute, time.Second, time.Second
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	var armed atomic.Bool
	landed, release := make(chan struct{}), make(chan struct{})
	fs := &fsystest.Faulty{FS: fsys.OS}
	fs.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
		f, err := next(p, d, tm)
		if err != nil {
			return f, err
		}
		return &landsThenStalls{File: f, armed: &armed, landed: landed, release: release}, nil
	}
	a := newLock(t, path, withFS(fs), WithLifetime(life), WithClockSlop(slop))
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := a.KeepAlive(context.Background())
	defer stop()
	armed.Store(true)
	refreshed := make(chan error, 1)
	go func() { refreshed <- a.Refresh(short) }()
	<-landed
	b := newLock(t, path, WithLifetime(life), WithClockSlop(slop))
	deadline := time.Now().Add(8 * time.Second)
	for {
		ok, err := b.TryAcquire()
		if err != nil {
			t.Fatalf("b.TryAcquire = %v", err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("b never took the lock")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("b took the lock")
	// The keeper looks at the lease's end, a slop before b could break;
	// and at least once a second.
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-kctx.Done():
		t.Logf("A's keep-alive context was cancelled: %v", context.Cause(kctx))
	default:
		t.Errorf("b holds the lock, taken by the expiry A's stuck Refresh(%v) wrote, while A's keep-alive context is still live (A's lease: %v)", short, func() time.Time { e, _, _, _ := a.acq.state(); return e }())
	}
	close(release)
	t.Logf("A's Refresh = %v", <-refreshed)
	b.Release()
}
