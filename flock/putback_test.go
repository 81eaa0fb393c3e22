//go:build unix

package flock

import (
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// TestBreakersLockMovedStaysOut stages, where names are moved aside
// rather than swapped (NFS, sshfs: the Locks here open every file they
// look at, so they do not swap), the race that a put-back at the
// breakers' path made, with no process paused past any lease:
//
//  1. S judges D, a dead breaker's expired L.break, and moves aside what
//     is there; its move lands late.
//  2. U, meanwhile, has removed D itself, taken L.break, looked at it, and
//     begun to read the expired lock file X: S's move lands now, and takes
//     U's file.
//  3. U reads X. V links its own L.break in the moment the path is free,
//     before S's file, which S links there at once, and which V's refuses.
//     While S reads what it moved, V breaks X, takes the lock, and gives
//     L.break up.
//  4. S finds it moved U's file, not D. Before commit cc3d6b9 it put it
//     back (mutant breakers-put-back): U's last look then found its own
//     file, and U moved V's fresh lock file aside, as the X it had read,
//     and put it back; W linked in that gap, and V and W both held the
//     lock. Now S removes U's file, and U's last look finds it gone.
//
// (Where nobody links in that moment, S's own file stands in for U's, and
// U's last look finds that.)
func TestBreakersLockMovedStaysOut(t *testing.T) {
	path, breakers, newLock := breakStage(t)
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	fsS, fsU := movingFS(), movingFS()
	fsV := &fsystest.Faulty{FS: fsys.OS}
	s, u, v, w := newLock(withFS(fsS)), newLock(withFS(fsU)), newLock(withFS(fsV)), newLock()
	var (
		uLinked, uReading, uLast atomic.Bool
		moveNow, moved, uRead    = make(chan struct{}), make(chan struct{}), make(chan struct{})
		sDone, uDone             = make(chan struct{}), make(chan struct{})
		vLinked, sRefused, vDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
		sMoved, vRan, sWaited    bool
		vHasLinked               bool
		uOK, vOK, wOK            bool
		vErr                     error
	)
	wait := func(c chan struct{}, what string) { waitStaged(t, c, what) }
	// 1, 2: S's move of L.break waits for U's reads of the lock file.
	fsS.OnRename = func(next func(string, string) error, o, n string) error {
		if o != breakers || sMoved {
			return next(o, n)
		}
		sMoved = true
		go func() {
			defer close(uDone)
			uOK, _ = u.TryAcquire()
		}()
		wait(moveNow, "U's reads of the lock file")
		err := next(o, n)
		close(moved)
		return err
	}
	fsU.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == breakers && err == nil {
			uLinked.Store(true)
		}
		return err
	}
	fsU.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		switch {
		case p == path && uLinked.Load() && !uReading.Load():
			uReading.Store(true)
			close(moveNow)
			wait(moved, "S's move of L.break")
		case p == breakers && uReading.Load() && !uLast.Load():
			// U has read X and looks at L.break for the last time.
			uLast.Store(true)
			close(uRead)
			wait(sDone, "S's end")
		}
		return next(p)
	}
	// 3: V links its own L.break between S's move and S's link of its
	// file there, which V's refuses; V then breaks X and takes the lock
	// while S reads what it moved.
	fsS.OnLink = func(next func(string, string) error, o, n string) error {
		if sMoved && !vRan && n == breakers {
			vRan = true
			wait(uRead, "U's read of X")
			go func() {
				defer close(vDone)
				vOK, vErr = v.TryAcquire()
			}()
			wait(vLinked, "V's link of L.break")
			err := next(o, n)
			close(sRefused)
			return err
		}
		return next(o, n)
	}
	fsV.OnLink = func(next func(string, string) error, o, n string) error {
		err := next(o, n)
		if n == breakers && err == nil && !vHasLinked {
			vHasLinked = true
			close(vLinked)
			wait(sRefused, "S's link of L.break")
		}
		return err
	}
	fsS.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		if vRan && p != breakers && p != path && !sWaited {
			sWaited = true
			wait(vDone, "V's end")
		}
		return next(p)
	}
	// 4: W comes if U moves the lock file aside and puts it back.
	takeInPutBackGap(fsU, path, uLast.Load, w, &wOK)
	sOK, sErr := s.TryAcquire()
	close(sDone)
	wait(uDone, "U's end")
	if vRan {
		wait(vDone, "V's end")
	}
	if !vRan {
		t.Fatalf("not staged: V never came (S %v, %v; U %v)", sOK, sErr, uOK)
	}
	t.Logf("took the lock: S %v (%v), U %v, V %v (%v), W %v", sOK, sErr, uOK, vOK, vErr, wOK)
	if !vOK {
		t.Errorf("V did not take the lock in the gap (%v): not staged", vErr)
	}
	if n := countTrue(sOK, uOK, vOK, wOK); n > 1 {
		t.Errorf("%d holders: S %v, U %v, V %v, W %v", n, sOK, uOK, vOK, wOK)
	}
}

// TestUnreadableBreakersLockStaysOut: a breaker gives up its breakers'
// lock by a look and a move aside; what the move takes, if another file
// replaced its own in between (a remover's, swapped in), stays out
// whether or not the breaker can read it. Until this test, a file it could
// not read (another user's 0600 file; here, an open refused by the fault
// seam) was put back, with the race of TestBreakersLockMovedStaysOut (the
// review of cc3d6b9). Fails with mutant breakers-put-back.
func TestUnreadableBreakersLockStaysOut(t *testing.T) {
	_, breakers, newLock := breakStage(t)
	fsU := movingFS()
	u := newLock(withFS(fsU))
	foreign := breakers + "-foreign"
	var aside string
	fsU.OnRename = func(next func(string, string) error, o, n string) error {
		if o == breakers && aside == "" {
			// Between U's last look and its move, another's file takes
			// the place of U's (which a remover would then remove).
			aside = n
			if err := next(breakers, n+"-ours"); err != nil {
				t.Errorf("staging the swap: %v", err)
			}
			writeAt(t, foreign, time.Now().Add(time.Second))
			if err := next(foreign, breakers); err != nil {
				t.Errorf("staging the swap: %v", err)
			}
		}
		return next(o, n)
	}
	fsU.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		if aside != "" && p == aside {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return next(p)
	}
	ok, err := u.TryAcquire()
	if !ok || err != nil {
		t.Fatalf("TryAcquire() = %v, %v; want the expired lock", ok, err)
	}
	if aside == "" {
		t.Fatal("not staged: U never gave up its breakers' lock by a move aside")
	}
	if _, err := os.Lstat(breakers); err == nil {
		t.Errorf("the file U could not read was put back at %s", breakers)
	}
	if _, err := os.Lstat(aside); err == nil {
		t.Errorf("the file U could not read was left at %s", aside)
	}
	os.Remove(aside + "-ours")
	if err := u.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// movingFS returns a fault seam over the real filesystem on which a Lock
// moves names aside rather than swap them, as on NFS or sshfs: its opens
// are hooked (Faulty.Direct).
func movingFS() *fsystest.Faulty {
	return &fsystest.Faulty{FS: fsys.OS, OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) { return next(p) }}
}

// waitStaged waits for c, failing t as not staged if it has not come
// within 30 s.
func waitStaged(t *testing.T, c chan struct{}, what string) {
	select {
	case <-c:
	case <-time.After(30 * time.Second):
		t.Errorf("not staged: %s never came", what)
	}
}

// staleFirstLook makes f's first open of path report the attributes of an
// earlier file there, with its expiry at: as sshfs's per-path attribute
// cache may (sweepLocked). It reports whether that open came.
func staleFirstLook(f *fsystest.Faulty, path string, at time.Time) func() bool {
	var stale bool
	f.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
		file, err := next(p)
		if p == path && !stale && err == nil {
			stale = true
			return staleStat{file, at}, nil
		}
		return file, err
	}
	return func() bool { return stale }
}
