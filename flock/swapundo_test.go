//go:build unix

package flock

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// TestSwapBackUndoesUnknown: the "C in the gap" order of
// TestSwapBackPushesOutNobody, where R's Lstat of what its swap back took
// out fails. It took out C's file, for h: removing what came out on that
// error (as d6b0020 did) removed C's live breakers' lock and left h to
// stand in for C by its expiry alone, which, with H's process gone, D
// WithDeadOwnerBreak broke at once, to take the lock beside C (the
// adversarial review of d6b0020). What is not known to be p is swapped
// straight back.
//
// That review also staged R paused, or killed, between its swap back and
// its swap straight back, with H gone: D breaks h there too. That window
// stays open (docs/RELIABILITY.md); it needs a breakers' path that is
// never free once used.
func TestSwapBackUndoesUnknown(t *testing.T) {
	path, breakers, newLock := swapStage(t)
	var lstatFail bool
	fsR, fsH, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h := newLock(withFS(fsR)), newLock(withFS(fsH), withPID(deadPID(t)))
	c, d, w := newLock(withFS(fsC)), newLock(WithDeadOwnerBreak()), newLock()
	rReady, rGo, rSwapped, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	rLooked, hRefused, hDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	cAtMove, cGo, cDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	rAtSwap := make(chan struct{})
	var (
		rSwaps, rLooks         int
		rBack                  []error
		hBroke, fired, putBack bool
		cMoved, cReleased      bool
		cOK, dOK, wOK          bool
		inGap                  string
	)
	afterH := func() {
		select {
		case <-hRefused:
		case <-hDone:
		}
	}
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		if rSwaps++; rSwaps == 1 {
			close(rReady)
			<-rGo
			err := next(a, b)
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p != breakers {
					return next(p)
				}
				if rLooks++; rLooks == 1 {
					f, err := next(breakers) // p, before H's move aside
					close(rLooked)
					return f, err
				}
				afterH()
				return next(breakers)
			}
			close(rSwapped)
			return err
		}
		if len(rBack) == 0 {
			close(rAtSwap)
		}
		afterH()
		err := next(a, b)
		rBack = append(rBack, err)
		if len(rBack) == 1 && err == nil {
			// R's swap back pushed C's file out for h; R's Lstat of
			// what came out fails.
			cur, _ := os.ReadFile(breakers)
			inGap = string(cur)
			lstatFail = true
			fsR.OnLstat = func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
				if lstatFail && p == a {
					lstatFail = false
					return fsys.Info{}, syscall.EIO
				}
				return next(p)
			}
		}
		return err
	}
	fsH.OnRename = func(next func(string, string) error, o, n string) error {
		switch {
		case o == path && !hBroke:
			hBroke = true
			return syscall.EIO // H's break fails: the lock stays expired
		case o == breakers && hBroke && !fired:
			fired = true // H has looked at h, its own: R's swap lands
			close(rGo)
			<-rSwapped
			select {
			case <-rLooked:
			case <-rAtSwap:
			case <-rDone:
			}
			return next(o, n)
		}
		return next(o, n)
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n != breakers || !fired || putBack {
			return next(o, n)
		}
		putBack = true
		go func() { defer close(cDone); cOK, _ = c.TryAcquire() }()
		select {
		case <-cAtMove:
		case <-cDone:
		}
		err := next(o, n)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("H's put-back of p with C at L.break = %v; want refused", err)
		}
		close(hRefused)
		return err
	}
	fsC.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !cMoved {
			cMoved = true
			close(cAtMove)
			<-cGo
			cReleased = true
		}
		return next(o, n)
	}
	takeInPutBackGap(fsC, path, func() bool { return cReleased }, w, &wOK)
	go func() { defer close(rDone); r.TryAcquire() }()
	<-rReady
	ok, err := h.TryAcquire()
	close(hDone)
	t.Logf("H's TryAcquire = %v, %v", ok, err)
	if !fired {
		close(rGo)
	}
	<-rDone
	t.Logf("R's swaps back: %v; at L.break in R's gap: %q", rBack, inGap)
	if !fired || !putBack || !cMoved || len(rBack) == 0 {
		t.Fatalf("not staged: fired %v, put back %v, C at move %v, R swapped back %v", fired, putBack, cMoved, rBack)
	}
	cur, _ := os.ReadFile(breakers)
	t.Logf("at L.break after R, with C at work: %q", cur)
	dOK, _ = d.TryAcquire()
	close(cGo)
	<-cDone
	t.Logf("took the lock: C %v, D %v, W %v", cOK, dOK, wOK)
	if dOK && (cOK || wOK) {
		t.Errorf("two holders: R removed C's file on a failed Lstat, and D broke h at once by H's death (C %v, D %v, W %v)", cOK, dOK, wOK)
	}
}
