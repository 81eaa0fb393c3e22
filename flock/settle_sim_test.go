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
	}{
		{"local", simfs.Local()},
		{"nfs", simfs.NFS()},
		{"sshfs", simfs.SSHFS()},
		{"smb", smb},
		{"numbers by path", pathNumbers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := simfs.NewServer(rand.New(rand.NewPCG(1, 2)), time.Now)
			h := srv.NewHost(tc.cfg)
			dir := t.TempDir()
			if err := srv.MkdirAll(dir); err != nil {
				t.Fatal(err)
			}
			lockPath := filepath.Join(dir, "app.lck")
			c := lockPath + "|pyhost|4242|123456789"
			if err := srv.WriteFile(c, []byte(c), time.Now().Add(-time.Hour), 1000); err != nil {
				t.Fatal(err)
			}
			if err := srv.Link(c, lockPath); err != nil {
				t.Fatal(err)
			}
			p := h.Namespace(0).Spawn(nil)
			l, err := flock.New(lockPath, flock.WithHostname("gohost"), flock.WithClockSlop(time.Second),
				flock.SimWithFS(p), flock.SimWithPID(p.PID()))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			start := time.Now()
			for time.Since(start) < 10*time.Second {
				ok, err := l.TryAcquire()
				if err != nil {
					t.Logf("TryAcquire: %v", err)
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
