//go:build unix

package flock

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// The three tests below are from the review of cc3d6b9, which removed
// what a move aside at L.break took rather than put it back, and left the
// path free: S, a remover that moves aside (as on NFS or sshfs), takes out
// the file of V, a live breaker past its last look whose move of the
// expired lock file is held up. Then S itself (TestRemoverBreaksNotBesideLiveBreaker),
// S after a look at V's file through a stale cache
// (TestStaleRemoverBreaksNotBesideLiveBreaker), or a fourth process Y where
// S cannot take L.break (TestRemovalLeavesNoFreePathUnderBreaker) took
// L.break, broke and took the lock, and V's move then took that fresh lock
// file aside; W linked in the gap of V's put-back. Now S publishes a file
// of its own at L.break right after its move, before it reads what it
// moved, and that file stands in for V, as after a swap. Each fails with
// mutant breakers-move-aside (a plain move aside, as at cc3d6b9).
//
// In "no links yet", S's filesystem refuses hard links, which S has not
// learned yet (its link of the lock file was refused, which reads as
// taken), so that its publish by link is refused too with nothing in the
// way: it must learn that and publish the portable way, not take the
// refusal for another's link and leave the path free (the review of
// c7ffa50: two holders until it did).
func TestRemoverBreaksNotBesideLiveBreaker(t *testing.T) {
	t.Run("links", func(t *testing.T) { removerBesideLiveBreaker(t, false) })
	t.Run("no links yet", func(t *testing.T) { removerBesideLiveBreaker(t, true) })
}

func removerBesideLiveBreaker(t *testing.T, noLinks bool) {
	path, breakers, newLock := breakStage(t)
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	// OnOpen set: these Locks move aside (as on NFS, sshfs), not swap.
	fsS, fsV := movingFS(), movingFS()
	if noLinks {
		refuseLinks(fsS)
	}
	s, v, w := newLock(withFS(fsS)), newLock(withFS(fsV)), newLock()
	var (
		sMoved, vHeld  bool
		vAtMove, sDone = make(chan struct{}), make(chan struct{})
		vDone          = make(chan struct{})
		vOK, wOK       bool
		vErr           error
	)
	wait := func(c chan struct{}, what string) { waitStaged(t, c, what) }
	// 1, 2: S's move of L.break waits for V's move of the lock file.
	fsS.OnRename = func(next func(string, string) error, o, n string) error {
		if o != breakers || sMoved {
			return next(o, n)
		}
		sMoved = true
		go func() {
			defer close(vDone)
			vOK, vErr = v.TryAcquire()
		}()
		wait(vAtMove, "V's move of the lock file")
		return next(o, n)
	}
	// 2, 4: V's move of the lock file, after its last look, waits for S.
	fsV.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !vHeld {
			vHeld = true
			close(vAtMove)
			wait(sDone, "S's end")
		}
		return next(o, n)
	}
	takeInPutBackGap(fsV, path, func() bool { return vHeld }, w, &wOK)
	sOK, sErr := s.TryAcquire()
	close(sDone)
	wait(vDone, "V's end")
	if !vHeld {
		t.Fatalf("not staged: V never moved the lock file (S %v, %v; V %v, %v)", sOK, sErr, vOK, vErr)
	}
	t.Logf("took the lock: S %v (%v), V %v (%v), W %v", sOK, sErr, vOK, vErr, wOK)
	for _, l := range []*Lock{s, v, w} {
		if ok, err := l.IsLocked(); ok {
			t.Logf("IsLocked true for a Lock (%v)", err)
		}
	}
	if n := countTrue(sOK, vOK, wOK); n > 1 {
		t.Errorf("%d holders: S %v, V %v, W %v", n, sOK, vOK, wOK)
	}
}

// staleStat is a File whose attributes are an earlier file's at its path,
// as sshfs's per-path attribute cache reports them (sweepLocked: "those
// read by path may be a cache's"): here the expiry of the dead breaker's
// L.break that stood there before.
type staleStat struct {
	fsys.File
	at time.Time
}

func (s staleStat) Stat() (fsys.Info, error) {
	i, err := s.File.Stat()
	i.ModTime = s.at
	return i, err
}

// TestStaleRemoverBreaksNotBesideLiveBreaker: S comes while V is between
// its last look and its move, and reads V's L.break with the attributes of
// the dead one before it (a per-path attribute cache).
func TestStaleRemoverBreaksNotBesideLiveBreaker(t *testing.T) {
	path, breakers, newLock := breakStage(t)
	dead := time.Now().Add(-time.Hour)
	writeAt(t, breakers, dead)
	fsS, fsV := movingFS(), movingFS()
	s, v, w := newLock(withFS(fsS)), newLock(withFS(fsV)), newLock()
	var (
		vHeld    bool
		sOK, wOK bool
		sErr     error
	)
	staleFirstLook(fsS, breakers, dead)
	fsV.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !vHeld {
			vHeld = true // V is past its last look of L.break
			sOK, sErr = s.TryAcquire()
		}
		return next(o, n)
	}
	takeInPutBackGap(fsV, path, func() bool { return vHeld }, w, &wOK)
	vOK, vErr := v.TryAcquire()
	if !vHeld {
		t.Fatalf("not staged: V never moved the lock file (V %v, %v)", vOK, vErr)
	}
	t.Logf("took the lock: S %v (%v), V %v (%v), W %v", sOK, sErr, vOK, vErr, wOK)
	if n := countTrue(sOK, vOK, wOK); n > 1 {
		t.Errorf("%d holders: S %v, V %v, W %v", n, sOK, vOK, wOK)
	}
}

// TestRemovalLeavesNoFreePathUnderBreaker: as the test above, but S may
// not take L.break once it has removed a file it moved aside; Y comes while
// V's move is still held up.
func TestRemovalLeavesNoFreePathUnderBreaker(t *testing.T) {
	path, breakers, newLock := breakStage(t)
	dead := time.Now().Add(-time.Hour)
	writeAt(t, breakers, dead)
	fsS, fsV := movingFS(), movingFS()
	s, v, y, w := newLock(withFS(fsS)), newLock(withFS(fsV)), newLock(), newLock()
	var (
		vHeld, sTook bool
		yOK, wOK     bool
		yErr         error
	)
	stale := staleFirstLook(fsS, breakers, dead)
	// S takes out what it moved aside, and stops there: its own link of
	// L.break is refused.
	fsS.OnRemove = func(next func(string) error, p string) error {
		err := next(p)
		if stale() && p != breakers && p != path {
			sTook = true
		}
		return err
	}
	fsS.OnLink = func(next func(string, string) error, o, n string) error {
		if n == breakers && sTook {
			return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EACCES}
		}
		return next(o, n)
	}
	fsV.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !vHeld {
			vHeld = true // V is past its last look of L.break
			s.TryAcquire()
			yOK, yErr = y.TryAcquire()
		}
		return next(o, n)
	}
	takeInPutBackGap(fsV, path, func() bool { return vHeld }, w, &wOK)
	vOK, vErr := v.TryAcquire()
	if !vHeld || !stale() {
		t.Fatalf("not staged (V %v, %v)", vOK, vErr)
	}
	t.Logf("took the lock: V %v (%v), Y %v (%v), W %v", vOK, vErr, yOK, yErr, wOK)
	if n := countTrue(vOK, yOK, wOK); n > 1 {
		t.Errorf("%d holders: V %v, Y %v, W %v", n, vOK, yOK, wOK)
	}
}

// refuseLinks makes f refuse link(2) with EPERM, and renames without
// replacing as unsupported, as sshfs -o disable_hardlink does.
func refuseLinks(f *fsystest.Faulty) {
	f.OnLink = func(next func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
	}
	f.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
	}
}
