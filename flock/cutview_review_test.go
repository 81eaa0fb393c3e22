//go:build unix

package flock

import (
	"sync"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// ownFineViewFS returns the system's filesystem seen through a mount that
// shows whole seconds of the times the server keeps (SFTP carries whole
// seconds) but keeps, for the files this mount created, the times it set
// itself: a FUSE mount with the kernel's writeback cache, where Linux
// trusts its own mtime and ctime of a regular file it wrote
// (fuse_do_setattr's trust_local_cmtime) and takes others' from the
// server (rclone mount --write-back-cache of an SFTP remote). Its claims
// then show fractions that the lock files of other hosts never do.
func ownFineViewFS() *fsystest.Faulty {
	var mu sync.Mutex
	own := map[string]bool{}
	isOwn := func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		return own[p]
	}
	return &fsystest.Faulty{
		FS: fsys.OS,
		OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
			f, err := next(p, d, tm)
			if err == nil {
				mu.Lock()
				own[p] = true
				mu.Unlock()
			}
			return f, err // as set: the kernel's own copy
		},
		OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			f, err := next(p)
			if err != nil || isOwn(p) {
				return f, err
			}
			return cutViewFile{f}, nil
		},
		OnLstat: func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
			info, err := next(p)
			if isOwn(p) {
				return info, err
			}
			return cutInfo(info), err
		},
	}
}

// TestReviewBreakerFineOwnViewWaitsOutCut: TestBreakerWaitsOutItsMountsCut
// on a mount that shows the breaker's own claims with the fractions it
// set but others' files cut to the second. In 4783ce4 noteFine learned
// fineTimes from the breaker's own claim, and cutBy then allowed nothing
// for the lock file's whole second: the breaker broke the holder's lock
// 0.3 s before its expiry (seed 8100000399's interleaving, on one more
// kind of mount).
func TestReviewBreakerFineOwnViewWaitsOutCut(t *testing.T) {
	stageCut(t, t.TempDir(), fsys.OS, ownFineViewFS()).leaseKept(t)
}
