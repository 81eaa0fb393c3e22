//go:build unix

package flock

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// cutViewFile shows its times cut to the second, whatever is stored: a
// file as an sshfs mount shows it (SFTP carries whole seconds), on a
// server that another host's NFS mount writes with fractions.
type cutViewFile struct{ fsys.File }

func (f cutViewFile) Stat() (fsys.Info, error) {
	info, err := f.File.Stat()
	return cutInfo(info), err
}

func cutInfo(info fsys.Info) fsys.Info {
	info.ModTime = info.ModTime.Truncate(time.Second)
	info.ChangeTime = info.ChangeTime.Truncate(time.Second)
	return info
}

// cutViewFS returns the system's filesystem seen through a mount that
// shows times cut to the second and stores them as given.
func cutViewFS() *fsystest.Faulty {
	return &fsystest.Faulty{
		FS: fsys.OS,
		OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
			f, err := next(p, d, tm)
			if err != nil {
				return f, err
			}
			return cutViewFile{f}, nil
		},
		OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			f, err := next(p)
			if err != nil {
				return f, err
			}
			return cutViewFile{f}, nil
		},
		OnLstat: func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
			info, err := next(p)
			return cutInfo(info), err
		},
	}
}

// cutStage is a lock held with an expiry 0.9 s past a second, beside a
// breaker, and a clock moved past that second and the slop but still
// within the holder's lease: where a breaker that takes the whole second
// for the expiry breaks the lock early.
type cutStage struct {
	clk             *offClock
	path            string
	holder, breaker *Lock
	expiry          time.Time // the holder's, as it judges its lease
	theirs          []byte    // the lock file's contents
}

const (
	cutLife = 3 * time.Second
	cutSlop = 200 * time.Millisecond
)

// stageCut has a holder through holderFS take the lock in dir with its
// expiry late in a second, makes a breaker through breakerFS, and moves
// the clock past the whole second, the slop and 0.4 s.
func stageCut(t *testing.T, dir string, holderFS, breakerFS fsys.FS) *cutStage {
	t.Helper()
	clk := newOffClock()
	atPhase(clk, time.Second, 900*time.Millisecond)
	s := &cutStage{clk: clk, path: filepath.Join(dir, "app.lck")}
	opts := func(fs fsys.FS) []Option {
		return []Option{withFS(fs), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(cutLife), WithClockSlop(cutSlop)}
	}
	s.holder = newLock(t, s.path, opts(holderFS)...)
	if err := s.holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.expiry, err = s.holder.Expiration(); err != nil {
		t.Fatal(err)
	}
	if s.expiry.Sub(s.expiry.Truncate(time.Second)) < 800*time.Millisecond {
		t.Fatalf("the holder's expiry %v does not lie late in its second", s.expiry)
	}
	if s.theirs, err = os.ReadFile(s.path); err != nil {
		t.Fatal(err)
	}
	s.breaker = newLock(t, s.path, opts(breakerFS)...)
	clk.advance(s.expiry.Truncate(time.Second).Add(cutSlop + 400*time.Millisecond).Sub(clk.Now()))
	if !clk.Now().Before(s.expiry) {
		t.Fatal("the clock is past the holder's expiry")
	}
	return s
}

// leaseKept checks that the breaker leaves the lock alone within the
// holder's lease, and that the holder can still refresh it.
func (s *cutStage) leaseKept(t *testing.T) {
	t.Helper()
	if ok, err := s.breaker.TryAcquire(); ok || err != nil {
		t.Errorf("breaker's TryAcquire within the holder's lease = %v, %v; want false, nil", ok, err)
	}
	if now, err := os.ReadFile(s.path); err != nil || !bytes.Equal(now, s.theirs) {
		t.Errorf("the holder's lock file was touched within its lease: %q, %v", now, err)
	}
	if err := s.holder.Refresh(cutLife); err != nil {
		t.Errorf("the holder's Refresh within its lease = %v", err)
	}
}

// TestBreakerWaitsOutItsMountsCut: a holder whose mount keeps fractions
// of a second writes an expiry 0.9 s past a second; a breaker whose mount
// shows whole seconds (sshfs beside NFS; seed 8100000399 of the
// simulation) reads it 0.9 s early. With a clock slop shorter than that,
// the breaker judged the lock expired while its holder's lease still ran,
// and broke it. A whole-second expiry is now judged up to a second later
// (two on an even second).
func TestBreakerWaitsOutItsMountsCut(t *testing.T) {
	s := stageCut(t, testenv.TempDir(t), fsys.OS, cutViewFS())
	s.leaseKept(t)
	if t.Failed() {
		return
	}

	// Past the refreshed expiry, its slop and its second: broken.
	expiry, err := s.holder.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	s.clk.advance(expiry.Add(cutSlop + 2*time.Second + 10*time.Millisecond).Sub(s.clk.Now()))
	if ok, err := s.breaker.TryAcquire(); !ok || err != nil {
		t.Fatalf("breaker's TryAcquire past the expiry, slop and a cut = %v, %v; want true, nil", ok, err)
	}
	if err := s.holder.Refresh(cutLife); err == nil {
		t.Fatal("the holder's Refresh after the break succeeded")
	}
	if err := s.breaker.Release(); err != nil {
		t.Fatal(err)
	}
}
