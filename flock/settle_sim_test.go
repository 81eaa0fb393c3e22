//go:build unix

package flock_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/fsys/simfs"
)

// TestExpiredFluflLockSettles: a lock file of flufl.lock's (an untagged
// claim, linked from its claim), long expired, whose holder is gone, is
// taken by a Go waiter once it has settled, on every kind of mount the
// model knows; a Go breaker's own probe links, which change the file, do
// not keep it settling (the review of the settling change: on a mount
// with numbers by path, each probe made the file look just changed).
func TestExpiredFluflLockSettles(t *testing.T) {
	smb := simfs.NFS()
	smb.PathInodes, smb.NlinkOne = true, true
	pathNumbers := simfs.NFS()
	pathNumbers.PathInodes = true
	for _, tc := range []struct {
		name string
		cfg  simfs.HostConfig
		// sees is whether the mount shows the change, so that the
		// first attempt, made just after the link, leaves the file.
		sees bool
	}{
		{"local", simfs.Local(), true},
		{"nfs", simfs.NFS(), true},
		{"sshfs", simfs.SSHFS(), false},
		{"smb", smb, false},
		{"numbers by path", pathNumbers, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := simfs.NewServer(rand.New(rand.NewPCG(1, 2)), time.Now)
			h := srv.NewHost(tc.cfg)
			dir := t.TempDir()
			if err := srv.MkdirAll(dir); err != nil {
				t.Fatal(err)
			}
			lockPath := filepath.Join(dir, "app.lck")
			linkFluflClaim(t, srv, lockPath+"|pyhost|4242|123456789", lockPath, time.Now().Add(-time.Hour))
			l := newSimLock(t, h, lockPath)
			start := time.Now()
			for first := true; time.Since(start) < 10*time.Second; first = false {
				ok, err := l.TryAcquire()
				if err != nil {
					t.Logf("TryAcquire: %v", err)
				}
				if first && ok == tc.sees {
					t.Fatalf("first TryAcquire = %v; want %v", ok, !tc.sees)
				}
				if ok {
					t.Logf("taken after %v", time.Since(start).Round(time.Millisecond))
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("an expired lock file of flufl.lock's, its holder gone, was not taken in 10 s")
		})
	}
}

// TestStaleCachedFluflLinkSettles: on a mount that caches attributes by
// path but has real link counts and change times, a breaker reads the
// lock file through a probe link; the read through the path may show an
// earlier file's times. Judged settled by those, a lock file flufl.lock
// linked just now past its expiry was broken (the second review of the
// settling change).
func TestStaleCachedFluflLinkSettles(t *testing.T) {
	cfg := simfs.SSHFS()
	cfg.CtimeCopy, cfg.NlinkOne, cfg.LinkRaceEPERM = false, false, 0
	cfg.AttrMin, cfg.AttrMax = 20*time.Second, 20*time.Second
	srv := simfs.NewServer(rand.New(rand.NewPCG(1, 2)), time.Now)
	py := srv.NewHost(simfs.Local()).Namespace(0).Spawn(nil)
	dir := t.TempDir()
	if err := srv.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(dir, "app.lck")
	old := lockPath + "|pyhost|4242|1234567890123"
	linkFluflClaim(t, srv, old, lockPath, time.Now().Add(-time.Hour))
	time.Sleep(2100 * time.Millisecond) // settled
	l := newSimLock(t, srv.NewHost(cfg), lockPath)
	if _, err := l.Inspect(); err != nil { // caches its times at the lock path
		t.Fatal(err)
	}
	// A Python process breaks it; another links its claim past its expiry.
	py.Remove(lockPath)
	py.Remove(old)
	linked := lockPath + "|pyhost|4243|123456789012"
	if err := srv.WriteFile(linked, []byte(linked), time.Now().Add(-time.Minute), 1000); err != nil {
		t.Fatal(err)
	}
	// Through the Python host, so that its link is seen as a change.
	if err := py.Link(linked, lockPath); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire = %v, %v; want false: the lock file flufl.lock linked just now was broken", ok, err)
	}
}

// linkFluflClaim does on srv what flufl.lock's lock() does: it writes the
// claim named name, naming itself, with the given expiry, and links it to
// lockPath.
func linkFluflClaim(t *testing.T, srv *simfs.Server, name, lockPath string, expiry time.Time) {
	t.Helper()
	if err := srv.WriteFile(name, []byte(name), expiry, 1000); err != nil {
		t.Fatal(err)
	}
	if err := srv.Link(name, lockPath); err != nil {
		t.Fatal(err)
	}
}

// newSimLock returns a Lock of lockPath for a new process on host h, with a
// slop of a second, closed when the test ends.
func newSimLock(t *testing.T, h *simfs.Host, lockPath string) *flock.Lock {
	t.Helper()
	p := h.Namespace(0).Spawn(nil)
	l, err := flock.New(lockPath, flock.WithHostname("gohost"), flock.WithClockSlop(time.Second),
		flock.SimWithFS(p), flock.SimWithPID(p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
