//go:build unix

package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock/posix"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// The tests of removeBreakers's swap, from its adversarial review. Each
// stages, through the fault seam, a removal of a dead breaker's L.break D
// by R that lands inside the break of B, which broke D first and holds
// L.break; they need a directory where names can be swapped.

// swapStage is breakStage on a directory where names can be swapped, with
// a dead breaker's L.break beside the expired lock file.
func swapStage(t *testing.T) (path, breakers string, newLock func(opts ...Option) *Lock) {
	t.Helper()
	path, breakers, newLock = breakStage(t)
	a, b := filepath.Join(filepath.Dir(path), "a"), filepath.Join(filepath.Dir(path), "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
	}
	if err := posix.Exchange(a, b); err != nil {
		t.Skipf("names cannot be swapped in one step here: %v", err)
	}
	if !fsys.OS.(fsys.Direct).Direct(filepath.Dir(path)) {
		t.Skipf("%s is not a local filesystem that nfsflock knows", filepath.Dir(path))
	}
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	return path, breakers, newLock
}

// TestPausedRemoverSwapsBackNothing: R swaps its own file p in for B's
// live L.break Y, finds Y is not D, and pauses before it swaps back, past
// p's lease and the slop (p's lease is swapTTL), so that C breaks p as
// stale and takes L.break; Y (breakTTL) is not breakable yet, so R would
// not take the breakers' lock over it. Were R to swap back now (as it
// did), it would pull C's live file out and put Y back, which expires
// while C is at work: E would break Y and the lock beside C, and W,
// linking in the gap of C's put-back, would hold the lock beside E. R
// looks at its lease on p first, finds it over, and leaves p where it is
// (C's now), removing Y.
func TestPausedRemoverSwapsBackNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps past a breakers' lease and its slop")
	}
	t.Parallel()
	path, breakers, newLock := swapStage(t)
	fsR, fsB, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, b, c, e, w := newLock(withFS(fsR)), newLock(withFS(fsB)), newLock(withFS(fsC)), newLock(), newLock()
	var (
		firstA              string
		first, back         func() error
		landed, paused, inC bool
		bOK, cOK, eOK, wOK  bool
	)
	fsR.OnExchange = func(next func(string, string) error, a, bb string) error {
		if bb != breakers {
			return next(a, bb)
		}
		switch {
		case first == nil: // R's removal of D, to land inside B's break
			firstA = a
			first = func() error { return next(a, bb) }
			bOK, _ = b.TryAcquire()
			// R has learned its filesystem by now, so hooking its opens
			// no longer makes it look by opening: it pauses as it reads
			// what came out.
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p == a && !paused {
					paused = true
					time.Sleep(swapTTL + r.breakSlop() + time.Second)
				}
				return next(p)
			}
			if landed {
				return nil
			}
			return next(a, bb)
		case a == firstA && back == nil: // R's swap back, to land inside C's break
			back = func() error { return next(a, bb) }
			cOK, _ = c.TryAcquire()
			if inC {
				return nil
			}
			return next(a, bb)
		}
		return next(a, bb)
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && first != nil && !landed {
			landed = true // past B's last look at L.break
			if err := first(); err != nil {
				t.Errorf("R's swap: %v", err)
			}
		}
		return next(o, n)
	}
	fsC.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && back != nil && !inC {
			// C broke R's file as stale, holds L.break, and is past its
			// last look at it: R's swap back lands, and E comes.
			inC = true
			if err := back(); err != nil {
				t.Errorf("R's swap back: %v", err)
			}
			// E comes by until Y may be broken, which is while C's
			// lease runs.
			for until := time.Now().Add(breakTTL); !eOK && time.Now().Before(until); time.Sleep(50 * time.Millisecond) {
				eOK, _ = e.TryAcquire()
			}
		}
		return next(o, n)
	}
	takeInPutBackGap(fsC, path, func() bool { return inC }, w, &wOK) // C's put-back gap
	rOK, _ := r.TryAcquire()
	if !landed || !paused {
		t.Fatalf("not staged: R's swap landed in B's break %v, R paused %v", landed, paused)
	}
	if back == nil {
		// No swap back: those who come now find R's file at L.break,
		// stale, or R's own breakers' lock, which it made before its
		// pause, until that expires.
		for until := time.Now().Add(2 * breakTTL); !cOK && time.Now().Before(until); time.Sleep(50 * time.Millisecond) {
			cOK, _ = c.TryAcquire()
		}
		eOK, _ = e.TryAcquire()
		wOK, _ = w.TryAcquire()
	}
	t.Logf("took the lock: B %v, R %v, C %v, E %v, W %v; R swapped back: %v", bOK, rOK, cOK, eOK, wOK, back != nil)
	if eOK && (cOK || wOK) {
		t.Errorf("two holders: R's late swap back let E break beside C (C %v, E %v, W %v)", cOK, eOK, wOK)
	}
	if !rOK && !cOK && !eOK && !wOK {
		t.Errorf("nobody took the lock after B's expired")
	}
}

// TestDeadSwapperKeepsBreakersLock: R's swap lands as B, past its last
// look at L.break, moves the expired lock file aside, and R dies at once:
// its file p stands at L.break, B's Y under p's name. R's death proves
// nothing of B, so Q, WithDeadOwnerBreak, must not break p for it (it
// did): Q would take L.break, break the lock and take it beside B's move,
// and B, finding Q's lock file where it moved, would put it back, and W,
// linking in that gap, would hold the lock beside Q.
func TestDeadSwapperKeepsBreakersLock(t *testing.T) {
	path, breakers, newLock := swapStage(t)
	fsR, fsB := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, b := newLock(withFS(fsR), withPID(deadPID(t))), newLock(withFS(fsB))
	q, w := newLock(WithDeadOwnerBreak()), newLock()
	var (
		first         func() error
		landed, dead  bool
		bOK, qOK, wOK bool
		qErr          error
	)
	fsR.OnExchange = func(next func(string, string) error, a, bb string) error {
		switch {
		case dead:
			return syscall.EIO // R is gone: nothing it asks for happens
		case bb != breakers || first != nil:
			return next(a, bb)
		}
		first = func() error { return next(a, bb) }
		bOK, _ = b.TryAcquire()
		return syscall.EIO
	}
	fsR.OnRemove = func(next func(string) error, p string) error {
		if dead {
			return syscall.EIO
		}
		return next(p)
	}
	fsR.OnRename = func(next func(string, string) error, o, n string) error {
		if dead {
			return syscall.EIO
		}
		return next(o, n)
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && first != nil && !landed {
			landed = true // past B's last look at L.break
			if err := first(); err != nil {
				t.Errorf("R's swap: %v", err)
			}
			dead = true
			qOK, qErr = q.TryAcquire()
		}
		return next(o, n)
	}
	takeInPutBackGap(fsB, path, func() bool { return landed }, w, &wOK) // B's put-back gap
	r.TryAcquire()
	if !landed {
		t.Fatal("not staged: R's swap never landed in B's break")
	}
	t.Logf("took the lock: B %v, Q %v (%v), W %v", bOK, qOK, qErr, wOK)
	if qOK && (bOK || wOK) {
		t.Errorf("two holders: Q broke the dead R's file at L.break beside B (B %v, Q %v, W %v)", bOK, qOK, wOK)
	}
}

// TestBlockedByBreakersLockNamesIt: a breakers' lock that this user may
// not swap out (another user's, in a sticky directory) is what the
// timeout names, with its owner, whichever call was refused.
func TestBlockedByBreakersLockNamesIt(t *testing.T) {
	_, breakers, newLock := swapStage(t)
	f := &fsystest.Faulty{FS: fsys.OS}
	f.OnExchange = func(_ func(string, string) error, a, b string) error {
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: syscall.EPERM}
	}
	l := newLock(withFS(f), WithTimeout(300*time.Millisecond))
	err := l.Acquire(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the breakers' lock beside it is owned by uid") {
		t.Errorf("Acquire = %v; want a timeout that names the breakers' lock and its owner", err)
	}
	if _, serr := os.Stat(breakers); serr != nil {
		t.Errorf("the breakers' lock: %v", serr)
	}
}

// TestPausedRemoverSwapsInNothing: R makes the file it will swap in for D
// and pauses, past that file's lease and the slop, before its swap. Were
// it to swap now (as it did), its file would stand at L.break already
// breakable, in place of B's, which B took meanwhile and holds as it moves
// the lock file aside: C would break R's file, take L.break and the lock
// beside B, and W, linking in the gap of B's put-back, would hold the lock
// beside C. R looks at its lease first, finds it over, and swaps nothing.
func TestPausedRemoverSwapsInNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps past a breakers' lease and its slop")
	}
	t.Parallel()
	path, breakers, newLock := swapStage(t)
	fsR, fsB := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, b, c, w := newLock(withFS(fsR)), newLock(withFS(fsB)), newLock(), newLock()
	var (
		paused, landed bool
		swap           func() error
		bOK, cOK, wOK  bool
	)
	fsR.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, at time.Time) (fsys.File, error) {
		f, err := next(p, data, at)
		if err == nil && !paused && strings.HasSuffix(string(data), swapMark) {
			paused = true
			time.Sleep(swapTTL + r.breakSlop() + time.Second)
		}
		return f, err
	}
	fsR.OnExchange = func(next func(string, string) error, a, bb string) error {
		if bb != breakers || swap != nil {
			return next(a, bb)
		}
		// R's first swap lands inside B's break.
		swap = func() error { return next(a, bb) }
		bOK, _ = b.TryAcquire()
		if landed {
			return nil
		}
		return next(a, bb)
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && swap != nil && !landed {
			landed = true // B holds L.break, past its last look at it
			if err := swap(); err != nil {
				t.Errorf("R's swap: %v", err)
			}
			cOK, _ = c.TryAcquire()
		}
		return next(o, n)
	}
	takeInPutBackGap(fsB, path, func() bool { return landed }, w, &wOK) // B's put-back gap
	rOK, _ := r.TryAcquire()
	if !paused || !landed {
		t.Fatalf("not staged: R paused %v, its swap landed in B's break %v", paused, landed)
	}
	t.Logf("took the lock: R %v, B %v, C %v, W %v", rOK, bOK, cOK, wOK)
	if cOK && (bOK || wOK) {
		t.Errorf("two holders: C broke R's stale swapped-in file beside B (B %v, C %v, W %v)", bOK, cOK, wOK)
	}
}

// TestSwapBackAfterGiveUpPushesOutNothing: R judges the stale L.break X
// and waits before it makes its file p; meanwhile H breaks X, holds
// L.break with h, fails at its break and gives h up. Just as H has looked
// at L.break (h, its own), R swaps p in, reads h, not X, and looks for p
// at L.break to swap h back (as it did, within its lease on p); then H's
// move aside takes p, and L.break is free until C links in, who goes on
// to break. R's swap back pushes C's file out and puts h back, whose
// expiry and slop pass within C's lease; R swaps C's file straight back
// in, but D may break h first: D takes the lock beside C's break, and W,
// linking in the gap of C's put-back, holds it beside D (the second
// adversarial review, where R swapped back without looking). R swaps
// back only a file that outlasts the lease of any breaker it may push
// out; h does not, so R removes it.
func TestSwapBackAfterGiveUpPushesOutNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a breakers' lease and its slop")
	}
	t.Parallel()
	path, breakers, newLock := swapStage(t)
	fsR, fsH, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	var (
		rJudged, goCreate, swapReady, doSwap, swapped = make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
		hFreed, hRestore, hDone, rLooked, rDone       = make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
		dTried                                        = make(chan struct{})
		cAtMove, cGo, cDone                           = make(chan struct{}), make(chan struct{}), make(chan struct{})
		t0                                            time.Time
		firstA                                        string
		hGaveUp, cMoved, pauseRandom, swappedBack     bool
		looked, undone                                bool
		dOK, wOK, cOK                                 bool
		creates                                       int
	)
	r, h, c, d, w := newLock(withFS(fsR), withRandom(func() uint64 {
		if pauseRandom { // R has read X: it waits before drawing p's name
			pauseRandom = false
			close(rJudged)
			<-goCreate
		}
		return randomID()
	}), withSwapTTL(breakTTL)), newLock(withFS(fsH)), newLock(withFS(fsC)), newLock(), newLock()
	until := func(at time.Duration) { time.Sleep(time.Until(t0.Add(at))) }
	fsR.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, at time.Time) (fsys.File, error) {
		if creates++; creates == 2 {
			// R's breakers' claim: R has learned its filesystem, so
			// hooking its opens no longer makes it look by opening.
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p == breakers && firstA == "" {
					pauseRandom = true
				}
				return next(p)
			}
		}
		if firstA == "" && strings.HasSuffix(string(data), swapMark) {
			firstA = p
		}
		return next(p, data, at)
	}
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers || a != firstA {
			return next(a, b)
		}
		select {
		case <-swapped:
			if !swappedBack { // the swap back, once H is done
				swappedBack = true
				<-hDone
				return next(a, b)
			}
			undone = true // what came out is C's: R swaps it back in
			<-dTried
			return next(a, b)
		default:
		}
		close(swapReady)
		<-doSwap
		err := next(a, b)
		fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			f, err := next(p)
			if p == breakers && !looked {
				looked = true // R looks for p, to swap h back
				close(rLooked)
			}
			return f, err
		}
		close(swapped)
		return err
	}
	fsH.OnRename = func(next func(string, string) error, o, n string) error {
		switch {
		case o == path && !hGaveUp:
			until(4850 * time.Millisecond) // H's break takes a while, within its lease
			close(goCreate)
			<-swapReady
			hGaveUp = true
			return syscall.EIO
		case o == breakers && hGaveUp:
			close(doSwap) // H has looked: h, its own, in its lease. R's swap lands.
			<-swapped
			select { // R reads h and looks for p, before H's move aside
			case <-rLooked:
			case <-rDone:
			}
		}
		return next(o, n)
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == breakers && hGaveUp {
			close(hFreed) // L.break is free; H holds p aside
			<-hRestore
		}
		return next(o, n)
	}
	fsC.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !cMoved {
			cMoved = true
			close(cAtMove)
			<-cGo
		}
		return next(o, n)
	}
	takeInPutBackGap(fsC, path, func() bool { return cMoved }, w, &wOK) // C's put-back gap
	go func() { defer close(rDone); r.TryAcquire() }()
	<-rJudged
	t0 = time.Now()
	go func() { defer close(hDone); h.TryAcquire() }()
	<-hFreed
	// C links in once h has expired, well within R's lease on p (to
	// about 9.85 s: R's file here has a breaker's lease, so that R's swap
	// back lies within it by seconds, not milliseconds), and D's break of
	// h (at about 10 s) within C's.
	until(6 * time.Second)
	go func() { defer close(cDone); cOK, _ = c.TryAcquire() }()
	select {
	case <-cAtMove:
	case <-cDone:
		t.Fatal("not staged: C did not take L.break and reach its move")
	}
	close(hRestore)
	<-hDone
	for time.Since(t0) < 13*time.Second {
		if ok, _ := d.TryAcquire(); ok {
			dOK = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(dTried)
	<-rDone
	close(cGo)
	<-cDone
	t.Logf("took the lock: C %v, D %v, W %v; R swapped back: %v, and C's file in again: %v", cOK, dOK, wOK, swappedBack, undone)
	if dOK && (cOK || wOK) {
		t.Errorf("two holders: R's swap back pushed C's breakers' lock out for H's, which D broke beside C (C %v, D %v, W %v)", cOK, dOK, wOK)
	}
}

// TestTwoRemoversLeaveNothing: R1 and R2 both judged a dead breaker's
// L.break X; R1 swaps its file p1 in, and R2 swaps p2 in for p1 before R1
// has read X. R1 then holds the breakers' lock, stands in for nobody, and
// marks p1 long expired before it gives up; R2 finds p1 breakable and
// takes the breakers' lock from it rather than swap it back or leave p2
// standing. Nothing is left at L.break to block breakers until it expires
// (a second review: either file stood there, unheld, for 10 s).
func TestTwoRemoversLeaveNothing(t *testing.T) {
	_, breakers, newLock := swapStage(t)
	type remover struct {
		fs                                 *fsystest.Faulty
		l                                  *Lock
		ready, goSwap, swapped, read, done chan struct{}
		first                              string
	}
	start := func() *remover {
		r := &remover{fs: &fsystest.Faulty{FS: fsys.OS}, ready: make(chan struct{}), goSwap: make(chan struct{}), swapped: make(chan struct{}), read: make(chan struct{}), done: make(chan struct{})}
		r.l = newLock(withFS(r.fs))
		r.fs.OnExchange = func(next func(string, string) error, a, b string) error {
			if b != breakers || r.first != "" {
				return next(a, b)
			}
			r.first = a
			close(r.ready)
			<-r.goSwap
			err := next(a, b)
			r.fs.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p == r.first {
					close(r.swapped)
					<-r.read
				}
				return next(p)
			}
			return err
		}
		go func() { defer close(r.done); r.l.TryAcquire() }()
		<-r.ready
		return r
	}
	r1 := start()
	r2 := start() // both judged X
	close(r1.goSwap)
	<-r1.swapped
	close(r2.goSwap)
	<-r2.swapped
	close(r1.read)
	<-r1.done
	close(r2.read)
	<-r2.done
	if b, err := os.ReadFile(breakers); err == nil {
		t.Errorf("left at L.break, with no breaker at work: %q", b)
	}
	holders := 0
	for _, r := range []*remover{r1, r2} {
		if ok, _ := r.l.IsLocked(); ok {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("%d of the two removers hold the lock; want one, which broke the expired lock", holders)
	}
}

// TestGiveUpAfterSwapLeavesNothing: H breaks a dead breaker's L.break X
// and the expired lock, and gives up its breakers' lock h; R, which
// judged X too, swaps its file p in just after H has looked at h, so that
// H moves p aside, finds it is not h, and puts it back. R then reads h,
// not X, and swaps it back. H looks again, finds h, and removes it: had
// it stopped after its first try (as it did), h would stand at L.break,
// unheld, until it expired, and every acquisition would wait beside it.
//
// R's swap back may also come while p is aside and the path free. Then R
// waits for H's put-back and swaps after it. It put h back into the free
// path at once, as it did, which left a file standing either way (a
// crowd of this test under -race met both): if H's put-back came
// between R's failed swap and its move, R's move was refused and R
// removed h, leaving p; if R's move came first, H's put-back was refused,
// and H removed p and stopped, leaving h.
func TestGiveUpAfterSwapLeavesNothing(t *testing.T) {
	for _, order := range []string{"put-back, swap back", "swap back, put-back", "swap back, swap back, put-back"} {
		t.Run(order, func(t *testing.T) { giveUpAfterSwap(t, order) })
	}
}

func giveUpAfterSwap(t *testing.T, order string) {
	path, breakers, newLock := swapStage(t)
	fsR, fsH := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h := newLock(withFS(fsR)), newLock(withFS(fsH))
	rReady, rGo, rSwapped, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	hAside, hPutBack, rFreed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var rSwaps, rSteps int
	// R's steps at L.break after its swap in: its looks at it and its
	// swaps back, and, where one finds the path free, what it does next,
	// by any call.
	rStep := func(run func() error) error {
		rSteps++
		switch {
		case order == "put-back, swap back":
			<-hPutBack
		case rSteps == 1:
			<-hAside
			err := run()
			if !gone(err) {
				t.Errorf("R's first step at L.break with p aside = %v; want the path free", err)
			}
			if order == "swap back, put-back" {
				close(rFreed)
			}
			return err
		case rSteps == 2 && order == "swap back, swap back, put-back":
			err := run()
			close(rFreed)
			return err
		default:
			<-hPutBack
		}
		return run()
	}
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		if rSwaps++; rSwaps == 1 {
			close(rReady) // R judged X
			<-rGo
			err := next(a, b)
			// Hooked only now: a Lock whose opens are hooked when it
			// learns its filesystem does not swap (Faulty.Direct).
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (f fsys.File, err error) {
				if p != breakers {
					return next(p)
				}
				rStep(func() error { f, err = next(p); return err })
				return f, err
			}
			close(rSwapped)
			return err
		}
		return rStep(func() error { return next(a, b) })
	}
	fsR.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n != breakers || rSwaps == 0 {
			return next(o, n)
		}
		return rStep(func() error { return next(o, n) })
	}
	var hBroke, fired, putBack bool
	fsH.OnRename = func(next func(string, string) error, o, n string) error {
		switch {
		case o == path:
			hBroke = true
		case o == breakers && hBroke && !fired:
			fired = true // H has looked at h, its own: R's swap lands
			close(rGo)
			<-rSwapped
			err := next(o, n)
			close(hAside)
			return err
		}
		return next(o, n)
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n != breakers || !fired || putBack {
			return next(o, n)
		}
		putBack = true // H puts p back, having found it is not h
		if order != "put-back, swap back" {
			select {
			case <-rFreed:
			case <-rDone:
			}
		}
		err := next(o, n)
		close(hPutBack)
		return err
	}
	go func() { defer close(rDone); r.TryAcquire() }()
	<-rReady
	if ok, err := h.TryAcquire(); !ok || err != nil {
		t.Fatalf("H's TryAcquire = %v, %v", ok, err)
	}
	if !fired {
		close(rGo)
	}
	if !putBack {
		close(hPutBack)
	}
	<-rDone
	if !fired || !putBack {
		t.Fatalf("not staged: R's swap landed in H's give-up: %v; H put R's file back: %v", fired, putBack)
	}
	if b, err := os.ReadFile(breakers); err == nil {
		t.Errorf("left at L.break after H gave it up: %q", b)
	}
	if ok, err := h.IsLocked(); !ok || err != nil {
		t.Errorf("H's IsLocked = %v, %v", ok, err)
	}
}

// TestGiveUpLeavesStandIn: as in TestGiveUpAfterSwapLeavesNothing, R's
// swap lands between H's look at its own h and H's move aside. R reads h,
// not X, and looks for p at L.break to swap h back; then H moves p aside,
// and L.break is free. C links in there (a breaker), so H's no-replace
// put-back is refused and H removes p. R's swap back, after its look,
// pushes C's file out for h: what comes out is not p, and R swaps it
// straight back in. Were h left there (mutant swap-back-no-undo), it
// would stand in for C (rule 2: h outlasts C's lease, protecting C, which
// may be past its last look), and H must not try again: its second try (as
// at 06ab38c) found h, its own, and removed it, which freed L.break within
// C's lease, and D took the breakers' lock beside C (the fourth review of
// the swap). It tries again only after its put-back went through.
func TestGiveUpLeavesStandIn(t *testing.T) {
	path, breakers, newLock := swapStage(t)
	fsR, fsH := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h, c, d := newLock(withFS(fsR)), newLock(withFS(fsH)), newLock(), newLock()
	rReady, rGo, rSwapped, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	rBackGo, rBack := make(chan struct{}), make(chan struct{})
	rLooked, rAtSwap := make(chan struct{}), make(chan struct{})
	var rSwaps int
	var looked bool
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		rSwaps++
		switch rSwaps {
		case 1:
			close(rReady) // R judged X
			<-rGo
			err := next(a, b)
			// Hooked only now: a Lock whose opens are hooked when it
			// learns its filesystem does not swap (Faulty.Direct).
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				f, err := next(p)
				if p == breakers && !looked {
					looked = true // p, before H's move aside
					close(rLooked)
				}
				return f, err
			}
			close(rSwapped)
			return err
		case 2: // R's swap back: held until H's put-back was refused
			close(rAtSwap)
			<-rBackGo
			err := next(a, b)
			t.Logf("R's swap back: %v", err)
			close(rBack)
			return err
		}
		return next(a, b)
	}
	var hBroke, fired, refused, heldBack bool
	var cb *claimFile
	var cErr error
	fsH.OnRename = func(next func(string, string) error, o, n string) error {
		switch {
		case o == path:
			hBroke = true
		case o == breakers && hBroke && !fired:
			fired = true // H has looked at h, its own: R's swap lands
			close(rGo)
			<-rSwapped
			select { // R looks for p to swap h back
			case <-rLooked:
			case <-rAtSwap:
			case <-rDone:
			}
		}
		return next(o, n)
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == breakers && fired && cb == nil && cErr == nil {
			cb, cErr = c.lockBreakers() // C links into the free L.break
			t.Logf("C's lockBreakers in H's put-back gap: held %v, %v", cb != nil, cErr)
		}
		err := next(o, n)
		if n == breakers && errors.Is(err, fs.ErrExist) {
			refused = true
		}
		return err
	}
	fsH.OnRemove = func(next func(string) error, p string) error {
		err := next(p)
		if refused && !heldBack {
			heldBack = true // H removed R's p; R swaps back before H looks again
			close(rBackGo)
			<-rBack
		}
		return err
	}
	go func() { defer close(rDone); r.TryAcquire() }()
	<-rReady
	ok, err := h.TryAcquire()
	t.Logf("H's TryAcquire = %v, %v", ok, err)
	if !heldBack {
		select {
		case <-rBackGo:
		default:
			close(rBackGo)
		}
	}
	if !fired {
		close(rGo)
	}
	<-rDone
	if !fired || cb == nil || !refused || !heldBack {
		t.Fatalf("not staged: fired %v, C held %v (%v), put-back refused %v, swap back held %v", fired, cb != nil, cErr, refused, heldBack)
	}
	cur, serr := os.ReadFile(breakers)
	t.Logf("at L.break now: %q (%v); C's lease over: %v", cur, serr, c.breakLeaseOver(cb))
	db, derr := d.lockBreakers()
	if db != nil {
		t.Errorf("D took the breakers' lock while C, which linked in, is within its lease (over: %v)", c.breakLeaseOver(cb))
		d.unlockBreakers(db)
	} else {
		t.Logf("D's lockBreakers: %v", derr)
	}
}

// TestSwapBackPushesOutNobody: H breaks a dead breaker's L.break X, fails
// at its move of the expired lock, and gives its h up; R, which judged X,
// swaps its p in just after H has looked at h, so that H moves p aside
// and L.break is free. C links in there and breaks, up to its move of the
// expired lock file, and H's put-back of p is refused. R reads h, which
// lasts, and would swap it back, pushing C's file out for h: h stands in
// for C only by its expiry, and where H's process is gone, D
// WithDeadOwnerBreak breaks h at once, takes L.break beside C, and takes
// the lock; C then moves D's lock file aside, and W links in C's put-back
// gap. A swap back now goes only onto p, which R looks for first:
//
//   - "free, then C": R's look finds the path free, and R waits for H's
//     put-back (as since 851909b, whose wait swapped back over C);
//   - "C, then swap back": R's look finds C's file (at b89c04a too R
//     swapped over it);
//   - "C in the gap": R's look finds p, and C links in before R's swap:
//     what comes out is not p, and R swaps it straight back in (mutant
//     swap-back-no-undo leaves h standing in for C);
//   - "C in the gap, its look fails": so, and R's Lstat of what came out
//     fails; R removed it, C's, as at d6b0020 (the sixth review of the
//     swap), and D broke h beside C. What is not known to be p goes back.
//
// The sixth review also staged R paused, or killed, between its swap back
// and its swap straight back, with H gone: D breaks h there too. That
// window stays open (docs/RELIABILITY.md): it needs a breakers' path that
// is never free once used.
//
// With H alive and no D, the same orders leave nothing at L.break once C
// is done: h, pushed in for C, stood there unheld until it expired (the
// adversarial review of 851909b).
func TestSwapBackPushesOutNobody(t *testing.T) {
	for _, dead := range []bool{true, false} {
		for _, order := range []string{"free, then C", "C, then swap back", "C in the gap", "C in the gap, its look fails"} {
			name := order
			if !dead {
				name += ", H alive"
			}
			t.Run(name, func(t *testing.T) { swapBackOverC(t, order, dead) })
		}
	}
}

func swapBackOverC(t *testing.T, order string, dead bool) {
	path, breakers, newLock := swapStage(t)
	fsR, fsH, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h := newLock(withFS(fsR)), newLock(withFS(fsH))
	if dead {
		h = newLock(withFS(fsH), withPID(deadPID(t)))
	}
	c, d, w := newLock(withFS(fsC)), newLock(WithDeadOwnerBreak()), newLock()
	rReady, rGo, rSwapped, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	rLooked, hAside, rFreed, hRefused, hDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	cAtMove, cGo, cDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	// rAtSwap: R came to a swap back without the look these stagings wait
	// for (as at the commits before the look), so that they go on.
	rAtSwap := make(chan struct{})
	var (
		rSwaps, rLooks         int
		rBack                  []error
		hBroke, fired, putBack bool
		cMoved, cReleased      bool
		cOK, dOK, wOK          bool
	)
	afterH := func() {
		select {
		case <-hRefused:
		case <-hDone:
		}
	}
	rLook := func(next func(string) (fsys.File, error)) (fsys.File, error) {
		rLooks++
		switch {
		case rLooks == 1 && order == "free, then C":
			<-hAside
			f, err := next(breakers)
			if !gone(err) {
				t.Errorf("R's look with p aside = %v; want the path free", err)
			}
			close(rFreed)
			return f, err
		case rLooks == 1 && strings.HasPrefix(order, "C in the gap"):
			f, err := next(breakers) // p, before H's move aside
			close(rLooked)
			return f, err
		}
		afterH()
		return next(breakers)
	}
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		if rSwaps++; rSwaps == 1 {
			close(rReady) // R judged X
			<-rGo
			err := next(a, b)
			// Hooked only now: a Lock whose opens are hooked when it
			// learns its filesystem does not swap (Faulty.Direct).
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p != breakers {
					return next(p)
				}
				return rLook(next)
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
		if order == "C in the gap, its look fails" && len(rBack) == 1 && err == nil {
			failed := false // R's Lstat of what came out fails
			fsR.OnLstat = func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
				if p == a && !failed {
					failed = true
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
			if strings.HasPrefix(order, "C in the gap") {
				select {
				case <-rLooked:
				case <-rAtSwap:
				case <-rDone:
				}
			}
			err := next(o, n)
			close(hAside)
			return err
		}
		return next(o, n)
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n != breakers || !fired || putBack {
			return next(o, n)
		}
		putBack = true
		if order == "free, then C" {
			select {
			case <-rFreed:
			case <-rAtSwap:
			case <-rDone:
			}
		}
		// C links into the free L.break and breaks, up to its move.
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
			cMoved = true // C holds L.break and is past its last look
			close(cAtMove)
			<-cGo
			cReleased = true
		}
		return next(o, n)
	}
	takeInPutBackGap(fsC, path, func() bool { return cReleased }, w, &wOK) // C's put-back gap
	go func() { defer close(rDone); r.TryAcquire() }()
	<-rReady
	ok, err := h.TryAcquire()
	close(hDone)
	t.Logf("H's TryAcquire = %v, %v", ok, err)
	if !fired {
		close(rGo)
	}
	<-rDone
	t.Logf("R's swaps back: %v", rBack)
	if !fired || !putBack || !cMoved {
		t.Fatalf("not staged: R's swap landed in H's give-up %v, H put p back %v, C reached its move %v", fired, putBack, cMoved)
	}
	if dead {
		dOK, err = d.TryAcquire()
		t.Logf("D's TryAcquire = %v, %v", dOK, err)
	}
	close(cGo)
	<-cDone
	t.Logf("took the lock: C %v, D %v, W %v", cOK, dOK, wOK)
	if dOK && (cOK || wOK) {
		t.Errorf("two holders: R's swap back pushed C's breakers' lock out for the dead H's h, which D broke at once beside C (C %v, D %v, W %v)", cOK, dOK, wOK)
	}
	if b, err := os.ReadFile(breakers); !dead && err == nil {
		t.Errorf("left at L.break, unheld, once every breaker is done (C took the lock: %v): %q", cOK, b)
	}
}
