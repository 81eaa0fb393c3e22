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

// TestBreakerWaitsOutItsMountsCut: a holder whose mount keeps fractions
// of a second writes an expiry 0.9 s past a second; a breaker whose mount
// shows whole seconds (sshfs beside NFS; seed 8100000399 of the
// simulation) reads it 0.9 s early. With a clock slop shorter than that,
// the breaker judged the lock expired while its holder's lease still ran,
// and broke it. A whole second read on a mount not seen to keep fractions
// is now judged up to a second later (two on an even second).
func TestBreakerWaitsOutItsMountsCut(t *testing.T) {
	const (
		life = 3 * time.Second
		slop = 200 * time.Millisecond
	)
	clk := newOffClock()
	atPhase(clk, time.Second, 900*time.Millisecond)
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	holder := newLock(t, path, WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life), WithClockSlop(slop))
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	expiry, err := holder.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	if expiry.Sub(expiry.Truncate(time.Second)) < 800*time.Millisecond {
		t.Fatalf("the holder's expiry %v does not lie late in its second", expiry)
	}
	theirs, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	breaker := newLock(t, path, withFS(cutViewFS()), WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(life), WithClockSlop(slop))

	// Past the expiry as the breaker's mount shows it, and the slop,
	// but within the holder's lease.
	clk.advance(expiry.Truncate(time.Second).Add(slop + 400*time.Millisecond).Sub(clk.Now()))
	if !clk.Now().Before(expiry) {
		t.Fatal("the clock is past the holder's expiry")
	}
	if ok, err := breaker.TryAcquire(); ok || err != nil {
		t.Fatalf("breaker's TryAcquire within the holder's lease = %v, %v; want false, nil", ok, err)
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, theirs) {
		t.Fatalf("the holder's lock file was touched within its lease: %q, %v", now, err)
	}
	if err := holder.Refresh(life); err != nil {
		t.Fatalf("the holder's Refresh within its lease = %v", err)
	}

	// Past the refreshed expiry, its slop and its second: broken.
	if expiry, err = holder.Expiration(); err != nil {
		t.Fatal(err)
	}
	clk.advance(expiry.Add(slop + 2*time.Second + 10*time.Millisecond).Sub(clk.Now()))
	if ok, err := breaker.TryAcquire(); !ok || err != nil {
		t.Fatalf("breaker's TryAcquire past the expiry, slop and a cut = %v, %v; want true, nil", ok, err)
	}
	if err := holder.Refresh(life); err == nil {
		t.Fatal("the holder's Refresh after the break succeeded")
	}
	if err := breaker.Release(); err != nil {
		t.Fatal(err)
	}
}
