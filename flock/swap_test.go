//go:build unix

package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock/posix"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// The tests of removeBreakers's swap, from its adversarial review. Each
// stages, through the fault seam, a removal of a dead breaker's L.break D
// by R that lands inside the break of B, which broke D first and holds
// L.break; they need a directory where names can be swapped.

// swapStage is breakStage on a directory where names can be swapped, with
// a dead breaker's L.break beside the expired lock file.
func swapStage(t *testing.T) (path, breakers string, newLock func(opts ...Option) *Lock) {
	t.Helper()
	return swapStageIn(t, t.TempDir())
}

// swapStageIn is swapStage in dir.
func swapStageIn(t *testing.T, dir string) (path, breakers string, newLock func(opts ...Option) *Lock) {
	t.Helper()
	path, breakers, newLock = breakStageIn(t, dir)
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
	if !fsys.OS.(fsys.Swapper).Swaps(filepath.Dir(path)) {
		t.Skipf("%s is not a filesystem that nfsflock knows to swap names", filepath.Dir(path))
	}
	writeAt(t, breakers, time.Now().Add(-time.Hour))
	return path, breakers, newLock
}

// TestPausedRemoverSwapsBackNothing: R swaps its own file p in for B's
// live L.break Y, finds Y is not D, and pauses as it reads it, past p's
// lease and the slop (p's lease is swapTTL), so that C breaks p as stale
// and takes L.break; Y (breakTTL) is not breakable yet. Were R to swap
// back now (mutant swap-back; before 1fa50f4 R did, and later only within
// its lease), it would pull C's live file out and put Y back, which
// expires while C is at work: E would break Y and the lock beside C, and
// W, linking in the gap of C's put-back, would hold the lock beside E. R
// never swaps back: it leaves p where it is (C's now), removing Y.
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
			// D goes (as a sweep would take it), so that B links a
			// breakers' lock of its own with a breaker's lease; one
			// that removed D would hold it through its swapped-in
			// file, whose lease is swapTTL.
			if err := os.Remove(breakers); err != nil {
				t.Errorf("removing D: %v", err)
			}
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

// TestTwoRemoversLeaveNothing: R1 and R2 both judged a dead breaker's
// L.break X; R1 swaps its file p1 in, and R2 swaps p2 in for p1 before R1
// has read X. R1 then took the breakers' lock, finds p2 where p1 stood,
// and marks p1 long expired; R2 finds p1 breakable and holds the
// breakers' lock through p2 rather than leave p2 standing in for p1.
// Nothing is left at L.break to block breakers until it expires (a
// second review: either file stood there, unheld, for 10 s).
func TestTwoRemoversLeaveNothing(t *testing.T) {
	onEachSwappingFS(t, twoRemoversLeaveNothing)
}

// onEachSwappingFS runs test on each local filesystem the process suites
// cover (testenv.Filesystems), in a directory of its own there: the swaps
// of removeBreakers are made wherever names can be swapped, and whether the
// filesystem is Direct besides decides what a Lock knows of identity (on
// overlayfs, which swaps but is not Direct, a Lock did not mark the file
// swapped out from under it: the review of 01e72b0).
func onEachSwappingFS(t *testing.T, test func(t *testing.T, dir string)) {
	for _, fs := range testenv.Filesystems() {
		t.Run(fs.Name, func(t *testing.T) { test(t, fs.Dir(t)) })
	}
}

func twoRemoversLeaveNothing(t *testing.T, dir string) {
	_, breakers, newLock := swapStageIn(t, dir)
	type remover struct {
		fs                                 *fsystest.Faulty
		l                                  *Lock
		ready, goSwap, swapped, read, done chan struct{}
		first                              string
		once                               sync.Once
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
					// Once: a remover that finds its file unmarked reads it
					// again (removeBreakers).
					r.once.Do(func() {
						close(r.swapped)
						<-r.read
					})
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

// TestSwappedOutStaysOut: H breaks a dead breaker's L.break X, fails at
// its move of the expired lock, and gives its h up; R, which judged X,
// swaps its p in just after H has looked at h, so that H moves p aside and
// L.break is free. C links in there and breaks, up to its move of the
// expired lock file, while H removes p (before commit cc3d6b9 it put p
// back, which C's link refused: mutant breakers-put-back). R reads h, not X,
// and must not remove it from L.break; it swapped the two back, which
// pushed C's file out for h: h stands in for C only by its expiry, and
// where H's process is gone, D WithDeadOwnerBreak breaks h at once,
// takes L.break beside C, and takes the lock; C then moves D's lock file
// aside, and W links in C's put-back gap. With H alive, h stood at
// L.break, unheld, until it expired.
//
//   - "swap back after C": R swaps back once C is in (mutant swap-back,
//     as at cc0d523; since d6b0020 R looked for p first, and left C's file
//     alone);
//   - "paused between swaps": R looks for p before H's move aside, C
//     links in, and R's swap back pushes C's file out; R, seeing what came
//     out is not p, would swap it straight back in, but pauses first (the
//     window the sixth review of the swap back left open, at 5852289).
//
// R now never swaps back: it removes h and leaves p, which H's move aside
// took here.
func TestSwappedOutStaysOut(t *testing.T) {
	for _, dead := range []bool{true, false} {
		for _, order := range []string{"swap back after C", "paused between swaps"} {
			name := order + ", H dead"
			if !dead {
				name = order + ", H alive"
			}
			t.Run(name, func(t *testing.T) { swappedOutStaysOut(t, order, dead) })
		}
	}
}

func swappedOutStaysOut(t *testing.T, order string, dead bool) {
	path, breakers, newLock := swapStage(t)
	fsR, fsH, fsC := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h := newLock(withFS(fsR)), newLock(withFS(fsH))
	if dead {
		h = newLock(withFS(fsH), withPID(deadPID(t)))
	}
	c, d, w := newLock(withFS(fsC)), newLock(WithDeadOwnerBreak()), newLock()
	rReady, rGo, rSwapped, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	rLooked, rAtSwap, rPaused, dTried := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	hRefused, hDone := make(chan struct{}), make(chan struct{})
	cAtMove, cGo, cDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	paused := order == "paused between swaps"
	var (
		rSwaps               int
		rBack                []error
		looked               bool
		hBroke, fired, freed bool
		cMoved, cReleased    bool
		cOK, dOK, wOK        bool
	)
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		switch rSwaps++; rSwaps {
		case 1:
			close(rReady) // R judged X
			<-rGo
			err := next(a, b)
			// Hooked only now: a Lock whose opens are hooked when it
			// learns its filesystem does not swap (Faulty.Direct).
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				f, err := next(p)
				if p == breakers && paused && !looked {
					looked = true // R looks for p, before H's move aside
					close(rLooked)
				}
				return f, err
			}
			close(rSwapped)
			return err
		case 2: // a swap back, once C is in
			close(rAtSwap)
			select {
			case <-hRefused:
			case <-hDone:
			}
		case 3: // a swap straight back in of what came out
			if paused {
				close(rPaused)
				<-dTried
			}
		}
		err := next(a, b)
		rBack = append(rBack, err)
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
			if paused {
				select {
				case <-rLooked:
				case <-rAtSwap:
				case <-rDone:
				}
			}
		}
		return next(o, n)
	}
	// H, finding it moved p, not h, removes p (with mutant
	// breakers-put-back, puts it back, which C's link refuses): meanwhile
	// C links into the free L.break and breaks, up to its move.
	cComes := func() {
		freed = true
		go func() { defer close(cDone); cOK, _ = c.TryAcquire() }()
		select {
		case <-cAtMove:
		case <-cDone:
		}
	}
	fsH.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n != breakers || !fired || freed {
			return next(o, n)
		}
		cComes()
		err := next(o, n)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("H's put-back of p with C at L.break = %v; want refused", err)
		}
		close(hRefused)
		return err
	}
	fsH.OnRemove = func(next func(string) error, p string) error {
		if !fired || freed || p == breakers || p == path {
			return next(p)
		}
		cComes() // H's first removal after its move: of p, moved aside
		err := next(p)
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
	select {
	case <-rPaused:
	case <-rDone:
	}
	if !fired || !freed || !cMoved {
		t.Fatalf("not staged: R's swap landed in H's give-up %v, H freed L.break of p %v, C reached its move %v", fired, freed, cMoved)
	}
	if dead {
		dOK, err = d.TryAcquire()
		t.Logf("D's TryAcquire = %v, %v", dOK, err)
	}
	close(dTried)
	<-rDone
	t.Logf("R's swaps back: %v", rBack)
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

// TestRemoverLooksAgainBeforeSwap: R judges a dead breaker's L.break X
// and makes its file p to swap in; meanwhile H removes X, takes L.break
// (h), and breaks the expired lock, past its last look at h. R looks
// again just before its swap, finds h, which is live, and swaps nothing.
// Swapping on its judgment of X (mutant swap-no-relook) took h out, and
// p, which may not be removed until it expires and the slop passes,
// stood at L.break, unheld, once H was done: every break of the lock
// waited beside it (crowds of eight processes beside a dead breaker's
// L.break met this about once in thirty).
func TestRemoverLooksAgainBeforeSwap(t *testing.T) {
	path, breakers, newLock := swapStage(t)
	fsR, fsH := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, h := newLock(withFS(fsR)), newLock(withFS(fsH))
	rReady, rGo, rDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var making, fired bool
	fsR.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, at time.Time) (fsys.File, error) {
		if !making && strings.HasSuffix(string(data), swapMark) {
			making = true // R judged X, and makes p
			close(rReady)
			<-rGo
		}
		return next(p, data, at)
	}
	fsH.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !fired {
			fired = true // H holds L.break, past its last look: R goes on
			close(rGo)
			<-rDone
		}
		return next(o, n)
	}
	var rOK bool
	go func() { defer close(rDone); rOK, _ = r.TryAcquire() }()
	<-rReady
	hOK, err := h.TryAcquire()
	if !fired {
		close(rGo)
		<-rDone
		t.Fatalf("not staged: H did not reach its move of the lock file (%v, %v)", hOK, err)
	}
	if !hOK || rOK {
		t.Errorf("took the lock: H %v (%v), R %v; want H alone", hOK, err, rOK)
	}
	if b, err := os.ReadFile(breakers); err == nil {
		t.Errorf("left at L.break once H was done: %q", b)
	}
}

// TestRemoverHoldsWhatItTook: R judged a dead breaker's L.break X, swaps
// its p in, reads X, and so holds the breakers' lock. Since 4373c3a
// (mutant give-up-marked-by-move) it marked p long expired and gave it up
// at once, by a look and a move aside, and linked a breakers' lock of its
// own after; B, coming between that look and that move, found p breakable
// (marked), swapped its own in, read p and gave that up too (the path was
// free), linked its own b3, and broke the expired lock up to its move of
// it, past its last look at L.break. R's move aside took b3, found it was
// not p and put it back, and C, linking into that gap, took L.break and
// the lock; B then moved C's lock file aside, and W, linking in B's
// put-back gap, held the lock beside C (the review of 5f238c0). R now
// holds the breakers' lock through p, unmarked, and breaks the lock; B,
// coming as R gives p up, takes the lock R broke, alone.
func TestRemoverHoldsWhatItTook(t *testing.T) {
	path, breakers, newLock := swapStage(t)
	fsR, fsB := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r, b, c, w := newLock(withFS(fsR)), newLock(withFS(fsB)), newLock(), newLock()
	var (
		swapped, bCame, bAtMove, bGoes bool
		aside                          string
		bOK, cOK, wOK                  bool
		bErr                           error
	)
	bAt, bGo, bDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	// bComes runs B up to its move of the lock file, at R's first change
	// of L.break in its give-up of p.
	bComes := func() {
		bCame = true
		go func() { defer close(bDone); bOK, bErr = b.TryAcquire() }()
		select {
		case <-bAt:
		case <-bDone:
		}
	}
	fsR.OnExchange = func(next func(string, string) error, a, bb string) error {
		switch {
		case bb != breakers:
		case !swapped:
			swapped = true // R's swap of p in for X
		}
		return next(a, bb)
	}
	fsR.OnRename = func(next func(string, string) error, o, n string) error {
		if o == breakers && swapped && !bCame {
			aside = n
			bComes() // R's give-up, by a move aside
		}
		return next(o, n)
	}
	fsR.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		if n == breakers && o == aside {
			cOK, _ = c.TryAcquire() // L.break is free while R puts back what it moved
		}
		return next(o, n)
	}
	fsB.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && !bAtMove {
			bAtMove = true // B holds L.break, past its last look at it
			close(bAt)
			<-bGo
			bGoes = true
		}
		return next(o, n)
	}
	takeInPutBackGap(fsB, path, func() bool { return bGoes }, w, &wOK) // B's put-back gap
	rOK, _ := r.TryAcquire()
	close(bGo)
	if !bCame {
		t.Fatal("not staged: R's give-up of p never changed L.break")
	}
	<-bDone
	t.Logf("took the lock: R %v, B %v (%v), C %v, W %v", rOK, bOK, bErr, cOK, wOK)
	if n := countTrue(rOK, bOK, cOK, wOK); n != 1 {
		t.Errorf("%d holders: R %v, B %v, C %v, W %v; want one", n, rOK, bOK, cOK, wOK)
	}
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// TestLateRemoverTakesOver: R1 and R2 both judged a dead breaker's L.break
// X and looked again just before their swaps; R1 swaps p1 in, reads X,
// and finds p1 standing, so that it holds the breakers' lock through it.
// Only then does R2's swap land: R2 reads p1, unmarked, and waits a
// moment for a mark. R1's next look finds p2 where p1 stood, and R1 marks
// p1 long expired (yieldSwapped), so that R2 holds the breakers' lock
// through p2 and breaks. Without the mark (mutant swap-no-yield, as at
// af307b4) R2 left p2 standing in for p1 and both gave up: p2 blocked
// every break until it expired and the slop passed (the second review of
// af307b4).
func TestLateRemoverTakesOver(t *testing.T) {
	onEachSwappingFS(t, lateRemoverTakesOver)
}

func lateRemoverTakesOver(t *testing.T, dir string) {
	_, breakers, newLock := swapStageIn(t, dir)
	fs1, fs2 := &fsystest.Faulty{FS: fsys.OS}, &fsystest.Faulty{FS: fsys.OS}
	r1, r2 := newLock(withFS(fs1)), newLock(withFS(fs2))
	r2AtSwap, r2Go, r2Swapped, r2Done := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	var r1Swaps, r2Swaps int
	var r1Looked bool
	fs2.OnExchange = func(next func(string, string) error, a, b string) error {
		if b != breakers {
			return next(a, b)
		}
		if r2Swaps++; r2Swaps != 1 {
			return next(a, b)
		}
		close(r2AtSwap) // R2 looked again, and saw X
		<-r2Go
		err := next(a, b)
		close(r2Swapped)
		return err
	}
	fs1.OnExchange = func(next func(string, string) error, a, b string) error {
		err := next(a, b)
		if b == breakers {
			if r1Swaps++; r1Swaps == 1 {
				// Hooked only now: a Lock whose opens are hooked when it
				// learns its filesystem does not swap (Faulty.Direct).
				fs1.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
					f, err := next(p)
					if p == breakers && !r1Looked {
						r1Looked = true // R1 found p1 standing: it holds
						close(r2Go)
						<-r2Swapped
					}
					return f, err
				}
			}
		}
		return err
	}
	var r2OK bool
	go func() { defer close(r2Done); r2OK, _ = r2.TryAcquire() }()
	<-r2AtSwap
	r1OK, _ := r1.TryAcquire()
	if !r1Looked {
		close(r2Go)
	}
	<-r2Done
	if !r1Looked || r2Swaps == 0 {
		t.Fatalf("not staged: R1 looked for p1 %v, R2 swapped %v", r1Looked, r2Swaps > 0)
	}
	t.Logf("took the lock: R1 %v, R2 %v", r1OK, r2OK)
	if r1OK == r2OK {
		t.Errorf("R1 %v, R2 %v: want one of them to hold the lock", r1OK, r2OK)
	}
	if b, err := os.ReadFile(breakers); err == nil {
		t.Errorf("left at L.break once both were done: %q", b)
	}
}

// TestFailedLookMarksNothing: R swaps its p in for a dead breaker's
// L.break X and reads X, and its look for p at L.break then fails
// (EMFILE). R cannot tell whether p still stands there, so it leaves p as
// it is; at af307b4 it marked p long expired, which put a marked file at
// L.break (the second review of af307b4), where a look and a move aside
// could meet different files. p stands, unheld, until it expires and the
// slop passes: a stall, in this rare failure.
func TestFailedLookMarksNothing(t *testing.T) {
	_, breakers, newLock := swapStage(t)
	fsR := &fsystest.Faulty{FS: fsys.OS}
	r := newLock(withFS(fsR))
	var swaps int
	var failed bool
	var seen []time.Time
	fsR.OnExchange = func(next func(string, string) error, a, b string) error {
		err := next(a, b)
		if b != breakers {
			return err
		}
		if swaps++; swaps == 1 {
			fsR.OnOpen = func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
				if p == breakers && !failed {
					failed = true // R's look for p after removing X
					return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EMFILE}
				}
				if p == breakers {
					if i, err := os.Lstat(breakers); err == nil {
						seen = append(seen, i.ModTime())
					}
				}
				return next(p)
			}
		}
		return err
	}
	ok, err := r.TryAcquire()
	t.Logf("R's TryAcquire = %v, %v; times seen at L.break after the failed look: %v", ok, err, seen)
	if !failed {
		t.Fatal("not staged: R's look for p did not fail")
	}
	for _, m := range seen {
		if m.Unix() == 0 {
			t.Errorf("a file marked long expired stood at L.break")
			break
		}
	}
}
