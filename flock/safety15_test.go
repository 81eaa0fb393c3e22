//go:build linux

package flock_test

// Regression tests for issue 15, "Safety, part two". Each fails on the code
// before the fixes (commit 9515263). The pid-namespace tests run the test
// binary and flufl.lock's lockctl.py in pid namespaces of their own with
// unshare(1), which needs root; they share this host's name.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// TestLifetimeBounds (issue 15.1): durations whose expiry arithmetic would
// leave what file times hold are refused, naming the largest allowed.
// UnixNano wraps after 2262, so a lifetime of math.MaxInt64 used to write
// an expiry in 1901, a lock that every waiter broke at once.
func TestLifetimeBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	largest := flock.MaxLifetime.String()
	for _, tc := range []struct {
		name string
		opt  flock.Option
	}{
		{"WithLifetime(MaxInt64)", flock.WithLifetime(math.MaxInt64)},
		{"WithLifetime(MaxLifetime+1)", flock.WithLifetime(flock.MaxLifetime + 1)},
		{"WithClockSlop(MaxInt64)", flock.WithClockSlop(math.MaxInt64)},
		{"WithTimeout(MaxInt64)", flock.WithTimeout(math.MaxInt64)},
	} {
		l, err := flock.New(path, tc.opt)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, flock.ErrInvalid) || !strings.Contains(err.Error(), largest) {
			t.Errorf("New(path, %s) = %v; want ErrInvalid naming the largest allowed, %s", tc.name, err, largest)
		}
	}

	l := newLock(t, path, flock.WithLifetime(time.Minute))
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}
	before, err := l.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(math.MaxInt64); !errors.Is(err, flock.ErrInvalid) || !strings.Contains(err.Error(), largest) {
		t.Errorf("Refresh(MaxInt64) = %v; want ErrInvalid naming the largest allowed, %s", err, largest)
	}
	if after, err := l.Expiration(); err != nil || !after.Equal(before) {
		t.Errorf("Expiration() after a refused Refresh = %v, %v; want %v, unchanged", after, err, before)
	}
	other := newLock(t, path, flock.WithClockSlop(0))
	if ok, err := other.TryAcquire(); ok || err != nil {
		t.Fatalf("another Lock's TryAcquire() after a refused Refresh = %v, %v; want false, nil", ok, err)
	}
	// The largest allowed gives a lock that lives, not one already expired.
	if err := l.Refresh(flock.MaxLifetime); err != nil {
		t.Fatalf("Refresh(MaxLifetime) = %v", err)
	}
	if exp, err := l.Expiration(); err != nil || !exp.After(time.Now().Add(flock.MaxLifetime/2)) {
		t.Errorf("Expiration() after Refresh(MaxLifetime) = %v, %v; want about %v from now", exp, err, flock.MaxLifetime)
	}
	if ok, err := other.TryAcquire(); ok || err != nil {
		t.Errorf("another Lock's TryAcquire() after Refresh(MaxLifetime) = %v, %v; want false, nil", ok, err)
	}
}

// TestSweepSparesOtherPidNamespaces (issue 15.2): a process of this host
// name in another pid namespace runs a pid that runs nothing here. Its
// claim while it waits must not be swept as a dead process's: a Go waiter
// and a real flufl.lock waiter, each in a pid namespace of its own, keep
// their claims through a sweep here and get the lock once it is released.
func TestSweepSparesOtherPidNamespaces(t *testing.T) {
	if testenv.Role() == "nswaiter" {
		nsWaiter(t)
		return
	}
	t.Parallel()
	python := testenv.FluflPython(t)
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	blocker := newLock(t, lockPath, flock.WithLifetime(time.Hour))
	if err := blocker.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}

	pids := freePIDs(t, 2)
	// The waiters' lifetimes outlast the lead of the sweeper's clock (below):
	// one that takes the lock while the sweeper breaks blocker's keeps it.
	pyCmd := exec.Command(python, script(t, "lockctl.py"), lockPath, "--lifetime=10800")
	pyCmd.Dir = dir
	py := startPyCmd(t, inPidNamespace(t, pyCmd, pids[0]))
	host := py.info.Hostname // flufl.lock's socket.getfqdn()
	pyLocked := make(chan error, 1)
	go func() {
		_, err := py.send("lock 60")
		pyLocked <- err
	}()
	waiter := startInPidNamespace(t, testenv.Command(t, "nswaiter", "NFSFLOCK_NS_LOCK="+lockPath, "NFSFLOCK_NS_HOST="+host), pids[1])
	goClaim := strings.TrimPrefix(waiter.expect("claim "), "claim ")
	waitExists(t, py.info.ClaimFile)
	for _, c := range []struct {
		name, path string
		pid        int
	}{{"python", py.info.ClaimFile, pids[0]}, {"go", goClaim, pids[1]}} {
		d, ok := claim.Parse([]byte(c.path), "|")
		if !ok || d.PID != c.pid || d.Hostname != host {
			t.Fatalf("%s waiter's claim %s; want host %q and pid %d, its pid in its namespace", c.name, c.path, host, c.pid)
		}
		if fsys.OS.ProcessAlive(c.pid) {
			t.Fatalf("pid %d of the %s waiter's namespace runs a process here too: the test proves nothing", c.pid, c.name)
		}
	}
	// An open descriptor tells whether its file was unlinked, even if the
	// waiter writes a file of the same name again.
	pinned := map[string]*os.File{"python": mustOpen(t, py.info.ClaimFile), "go": mustOpen(t, goClaim)}

	// A Lock here, with the waiters' host name and a clock two hours on
	// that it trusts alone (no time base), so that it breaks blocker's
	// lock at once: every break ends in a sweep.
	// A waiter may take the lock before the sweeper does.
	sweeper := newLock(t, lockPath, flock.WithHostname(host), flock.WithClockSlop(0),
		flock.WithClock(testenv.NewClock(time.Now().Add(2*time.Hour))), flock.WithoutTimeBase())
	held, err := sweeper.TryAcquire()
	if err != nil {
		t.Fatalf("sweeper.TryAcquire() = %v", err)
	}
	if ok, _ := blocker.IsLocked(); ok {
		t.Fatal("the sweeper did not break blocker's lock, after which it sweeps")
	}
	for who, f := range pinned {
		if n := links(t, f); n == 0 {
			t.Fatalf("the %s waiter's claim %s, of a live process in another pid namespace, was swept", who, f.Name())
		}
	}
	if held {
		if err := sweeper.Release(); err != nil {
			t.Fatalf("sweeper.Release() = %v", err)
		}
	}
	// Both waiters get the lock: the Go waiter lets it go once its input
	// ends, and Python when told to.
	waiter.stdin.Close()
	if err := <-pyLocked; err != nil {
		t.Fatalf("python lock(60) in another pid namespace, after the Go holder released = %v; want the lock", err)
	}
	py.must("unlock", nil)
	if out := waiter.wait(); !strings.Contains(out, "held\n") {
		t.Errorf("the Go waiter in another pid namespace never held the lock; it wrote:\n%s", out)
	}
}

// nsWaiter is the Go waiter of TestSweepSparesOtherPidNamespaces: it says
// which claim it waits with, and that it holds the lock, which it releases
// once its input ends.
func nsWaiter(t *testing.T) {
	l, err := flock.New(os.Getenv("NFSFLOCK_NS_LOCK"), flock.WithHostname(os.Getenv("NFSFLOCK_NS_HOST")), flock.WithLifetime(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := boundedContext(t)
	acquired := make(chan error, 1)
	go func() { acquired <- l.Acquire(ctx) }()
	for l.ClaimPath() == "" {
		select {
		case err := <-acquired:
			t.Fatalf("Acquire = %v before it waited", err)
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Println("claim", l.ClaimPath())
	if err := <-acquired; err != nil {
		t.Fatalf("Acquire in another pid namespace = %v", err)
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
	if err := l.Release(); err != nil {
		t.Fatalf("Release = %v", err)
	}
}

// TestDeadOwnerBreakSparesOtherPidNamespaces (issue 15.2): WithDeadOwnerBreak
// judges a holder of this host by its pid only when the holder's claim
// says it ran in this pid namespace. A Go holder in another one, whose pid
// runs nothing here, keeps its lock.
func TestDeadOwnerBreakSparesOtherPidNamespaces(t *testing.T) {
	if testenv.Role() == "nsholder" {
		l, err := flock.New(os.Getenv("NFSFLOCK_NS_LOCK"), flock.WithLifetime(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Acquire(boundedContext(t)); err != nil {
			t.Fatal(err)
		}
		fmt.Println("held", l.ClaimPath())
		io.Copy(io.Discard, os.Stdin) // until the test is done
		if err := l.Release(); err != nil {
			t.Fatalf("Release in another pid namespace = %v; want nil, the lock still ours", err)
		}
		return
	}
	t.Parallel()
	lockPath := filepath.Join(t.TempDir(), "app.lck")
	pid := freePIDs(t, 1)[0]
	holder := startInPidNamespace(t, testenv.Command(t, "nsholder", "NFSFLOCK_NS_LOCK="+lockPath), pid)
	held := strings.TrimPrefix(holder.expect("held "), "held ")
	if d, ok := claim.Parse([]byte(held), "|"); !ok || d.PID != pid || fsys.OS.ProcessAlive(pid) {
		t.Fatalf("holder's claim %s; want pid %d, which runs nothing here", held, pid)
	}
	l := newLock(t, lockPath, flock.WithDeadOwnerBreak())
	if ok, err := l.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire() with WithDeadOwnerBreak, of a live holder in another pid namespace = %v, %v; want false, nil", ok, err)
	}
	if broke, err := l.Break(false); broke || err != nil {
		t.Errorf("Break(false) with WithDeadOwnerBreak, of a live holder in another pid namespace = %v, %v; want false, nil", broke, err)
	}
	holder.wait()
}

// TestBreakKeepsPythonLinkCount (issue 15.3): flufl.lock holds the lock
// only while its claim has exactly two links. A Go waiter that judged a
// Python holder's lock expired re-checks it while Python refreshes: on a
// filesystem with real link counts it adds no link of its own, neither to
// read the lock file again (Recheck) nor to put back a lock file it moved
// aside and found refreshed (Restore, where renameat2 can).
func TestBreakKeepsPythonLinkCount(t *testing.T) {
	t.Parallel()
	for _, restore := range []bool{false, true} {
		name := map[bool]string{false: "Recheck", true: "Restore"}[restore]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			lockPath := filepath.Join(dir, "app.lck")
			py := startPy(t, dir, lockPath, "--lifetime=1")
			py.must("lock", nil)
			refresh := func(when, command string) {
				t.Helper()
				if _, err := py.call(command); err != nil {
					t.Errorf("python %s, %s: %v; want its lock intact", command, when, err)
				}
			}
			// From the moment Go holds the breakers' lock, Python's claim
			// must keep two links after every call of Go's that adds or
			// removes a name; in Recheck, Python refreshes after each too.
			breaking := false
			after := func(op string, err error, args ...string) {
				t.Helper()
				if !breaking {
					return
				}
				for i, a := range args {
					args[i] = filepath.Base(a)
				}
				call := fmt.Sprintf("%s(%s) = %v", op, strings.Join(args, ", "), err)
				if fi, serr := os.Lstat(py.info.ClaimFile); serr != nil {
					t.Errorf("after Go's %s: %v", call, serr)
				} else if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 2 {
					t.Errorf("after Go's %s, Python's claim has %d links; flufl.lock holds the lock only with 2", call, n)
				}
				if !restore {
					refresh("after Go's "+call, "refresh")
				}
			}
			f := &fsystest.Faulty{
				FS: fsys.OS,
				OnLink: func(next func(string, string) error, oldname, newname string) error {
					err := next(oldname, newname)
					if err == nil && newname == lockPath+".break" && !breaking {
						breaking = true
						if !restore {
							// Refreshed before Go reads it again.
							refresh("once Go took the breakers' lock", "refresh 3600")
						}
					}
					after("link", err, oldname, newname)
					return err
				},
				OnRename: func(next func(string, string) error, oldname, newname string) error {
					if restore && breaking && oldname == lockPath {
						// Refreshed after Go read it again, before the move.
						refresh("before Go moved the lock file aside", "refresh 3600")
					}
					err := next(oldname, newname)
					after("rename", err, oldname, newname)
					return err
				},
				OnRenameNoReplace: func(next func(string, string) error, oldname, newname string) error {
					err := next(oldname, newname)
					after("rename without replacing", err, oldname, newname)
					return err
				},
				OnRemove: func(next func(string) error, path string) error {
					err := next(path)
					after("remove", err, path)
					return err
				},
			}
			// A minute ahead, trusting its own clock alone (no time base),
			// and without slop, Go finds Python's lock expired.
			l := newLock(t, lockPath, flock.SimWithFS(f), flock.WithClockSlop(0),
				flock.WithClock(testenv.NewClock(time.Now().Add(time.Minute))), flock.WithoutTimeBase())
			if ok, err := l.TryAcquire(); ok || err != nil {
				t.Errorf("TryAcquire() of Python's refreshed lock = %v, %v; want false, nil", ok, err)
			}
			if !breaking {
				t.Fatal("Go never took the breakers' lock: the test tried no break")
			}
			breaking = false
			if d, err := l.Details(); err != nil || d.PID != py.info.PID {
				t.Errorf("Details() = %+v, %v; want Python's lock", d, err)
			}
			py.must("refresh", nil)
			py.must("unlock", nil)
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left %q", names)
			}
		})
	}
}

// coarseTimes is a filesystem whose file times are whole seconds, as on
// sshfs or FAT, and whose setting of times fails while fail is set; the
// first failure calls onFail.
type coarseTimes struct {
	fail   atomic.Bool
	once   sync.Once
	onFail func()
}

func (c *coarseTimes) fs() *fsystest.Faulty {
	return &fsystest.Faulty{
		FS: fsys.OS,
		OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), path string, data []byte, t time.Time) (fsys.File, error) {
			f, err := next(path, data, t.Truncate(time.Second))
			if err != nil {
				return nil, err
			}
			return coarseFile{f, c}, nil
		},
		OnOpen: func(next func(string) (fsys.File, error), path string) (fsys.File, error) {
			f, err := next(path)
			if err != nil {
				return nil, err
			}
			return coarseFile{f, c}, nil
		},
	}
}

type coarseFile struct {
	fsys.File
	c *coarseTimes
}

func (f coarseFile) SetTimes(t time.Time) error {
	if f.c.fail.Load() {
		if f.c.onFail != nil {
			f.c.once.Do(f.c.onFail)
		}
		return &fs.PathError{Op: "utimensat", Path: "claim", Err: syscall.EIO}
	}
	return f.File.SetTimes(t.Truncate(time.Second))
}

// TestLeaseJudgedAsStored (issue 15.5): where file times are whole
// seconds, an expiry of X.7 s is stored as X s, and from X s on a waiter
// without clock slop may break the lock. The holder must count its lease
// as over from then too, by the expiry as stored, not as it was meant.
func TestLeaseJudgedAsStored(t *testing.T) {
	const lifetime = 3 * time.Second
	start := time.Date(2030, 1, 1, 0, 0, 0, int(700*time.Millisecond), time.UTC)
	stored := start.Add(lifetime).Truncate(time.Second)
	lateBy := 300 * time.Millisecond // past stored, before start+lifetime
	setup := func(t *testing.T) (*flock.Lock, *coarseTimes, *testenv.Clock, string) {
		t.Helper()
		clock := testenv.NewClock(start)
		c := &coarseTimes{}
		path := filepath.Join(t.TempDir(), "app.lck")
		l := newLock(t, path, flock.SimWithFS(c.fs()), flock.WithClock(clock), flock.WithoutTimeBase(), flock.WithLifetime(lifetime),
			flock.WithClockSlop(0), flock.WithRetry(retry.Constant(100*time.Millisecond)))
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		if exp, err := l.Expiration(); err != nil || !exp.Equal(stored) {
			t.Fatalf("Expiration() = %v, %v; want %v, cut to the second", exp, err, stored)
		}
		return l, c, clock, path
	}
	// breakable checks that a Lock without clock slop may break the lock
	// once the second or two that it waits out of a whole-second expiry
	// (cutBy) have passed too: the holder has had to give it up.
	breakable := func(t *testing.T, clock *testenv.Clock, path string) {
		t.Helper()
		clock.Set(clock.Now().Add(2 * time.Second))
		other := newLock(t, path, flock.WithClock(clock), flock.WithoutTimeBase(), flock.WithClockSlop(0))
		if ok, err := other.TryAcquire(); !ok || err != nil {
			t.Errorf("TryAcquire() of another Lock without slop at %v = %v, %v; want true, nil", clock.Now(), ok, err)
		}
	}

	t.Run("Refresh", func(t *testing.T) {
		l, _, clock, path := setup(t)
		clock.Set(stored.Add(lateBy))
		if err := l.Refresh(0); !errors.Is(err, flock.ErrLockLost) {
			t.Errorf("Refresh(0) at %v, after the stored expiry %v = %v; want ErrLockLost", clock.Now(), stored, err)
		}
		breakable(t, clock, path)
	})

	t.Run("KeepAlive", func(t *testing.T) {
		l, c, clock, path := setup(t)
		// Refreshes fail from the first one due, and time runs on meanwhile
		// to just past the stored expiry.
		c.onFail = func() { clock.Set(stored.Add(lateBy)) }
		c.fail.Store(true)
		clock.Set(start.Add(lifetime/3 + 100*time.Millisecond))
		ctx, stop := l.KeepAlive(context.Background())
		defer stop()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("the keep-alive still holds at %v, after the stored expiry %v", clock.Now(), stored)
		}
		if cause := context.Cause(ctx); !errors.Is(cause, flock.ErrLockLost) {
			t.Errorf("keep-alive ended with %v; want ErrLockLost", cause)
		}
		c.fail.Store(false)
		breakable(t, clock, path)
	})
}

// TestBreakersLockLifetime (issue 15.6): the breakers' lock lives for a
// few seconds whatever the Lock's lifetime and clock slop, and a breaker
// without clock slop leaves another's live breakers' lock alone.
func TestBreakersLockLifetime(t *testing.T) {
	expired := func(t *testing.T) (string, *testenv.Clock) {
		t.Helper()
		lockPath := filepath.Join(t.TempDir(), "app.lck")
		writeAged(t, lockPath, lockPath+"|elsewhere|4242|1", time.Hour)
		return lockPath, testenv.NewClock(time.Now())
	}

	t.Run("ExpiresSoon", func(t *testing.T) {
		lockPath, clock := expired(t)
		ahead := time.Duration(-1)
		f := &fsystest.Faulty{FS: fsys.OS, OnLink: func(next func(string, string) error, oldname, newname string) error {
			err := next(oldname, newname)
			if err == nil && newname == lockPath+".break" {
				fi, serr := os.Lstat(newname)
				if serr != nil {
					t.Fatal(serr)
				}
				ahead = fi.ModTime().Sub(clock.Now())
			}
			return err
		}}
		l := newLock(t, lockPath, flock.SimWithFS(f), flock.WithClock(clock), flock.WithoutTimeBase(), flock.WithLifetime(time.Hour), flock.WithClockSlop(0))
		if ok, err := l.TryAcquire(); !ok || err != nil {
			t.Fatalf("TryAcquire() of an expired lock = %v, %v; want true, nil", ok, err)
		}
		if ahead < 0 {
			t.Fatal("no breakers' lock was taken")
		}
		if ahead > 5*time.Second {
			t.Errorf("the breakers' lock expires %v after it was taken, by a Lock with lifetime 1h and no slop; want 5s at most", ahead)
		}
	})

	t.Run("NoSlopWaitsForLiveBreaker", func(t *testing.T) {
		lockPath, clock := expired(t)
		opts := []flock.Option{flock.WithClock(clock), flock.WithoutTimeBase(), flock.WithLifetime(time.Second), flock.WithClockSlop(0)}
		b := newLock(t, lockPath, opts...)
		paused := false
		f := &fsystest.Faulty{FS: fsys.OS, OnLink: func(next func(string, string) error, oldname, newname string) error {
			err := next(oldname, newname)
			if err == nil && newname == lockPath+".break" && !paused {
				// a pauses mid-break, longer than its lifetime, and b comes.
				paused = true
				clock.Advance(2 * time.Second)
				if ok, err := b.TryAcquire(); ok || err != nil {
					t.Errorf("b.TryAcquire() while a breaks = %v, %v; want false, nil", ok, err)
				}
				if got, rerr := os.ReadFile(newname); rerr != nil || string(got) != oldname {
					t.Errorf("a's breakers' lock, 2s into its lease, after b's attempt: %q, %v; want it still a's", got, rerr)
				}
			}
			return err
		}}
		a := newLock(t, lockPath, append(opts, flock.SimWithFS(f))...)
		if ok, err := a.TryAcquire(); !ok || err != nil {
			t.Errorf("a.TryAcquire() of an expired lock = %v, %v; want true, nil", ok, err)
		}
		if !paused {
			t.Fatal("a took no breakers' lock")
		}
	})
}

// TestQueuedAcquireDoneContext (issue 15.8): as Acquire's doc says, an
// Acquire queued behind another Acquire of the same Lock returns without
// an attempt when its ctx is done first; one that is not queued makes its
// one attempt.
func TestQueuedAcquireDoneContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	holder := newLock(t, path)
	if err := holder.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}
	var links atomic.Int32
	f := &fsystest.Faulty{FS: fsys.OS, OnLink: func(next func(string, string) error, oldname, newname string) error {
		links.Add(1)
		return next(oldname, newname)
	}}
	l := newLock(t, path, flock.SimWithFS(f), flock.WithRetry(retry.Constant(time.Hour)))
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- l.Acquire(ctx) }()
	bound := time.After(waitBound)
	for links.Load() == 0 { // then the first has its turn until it returns
		select {
		case err := <-first:
			t.Fatalf("first Acquire = %v while another Lock holds the lock", err)
		case <-bound:
			t.Fatal("the first Acquire made no attempt")
		case <-time.After(time.Millisecond):
		}
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	before := links.Load()
	if err := l.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Errorf("queued Acquire(done) = %v; want context.Canceled", err)
	}
	if n := links.Load(); n != before {
		t.Errorf("queued Acquire(done) linked %d times; want no attempt", n-before)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first Acquire after cancel = %v; want context.Canceled", err)
	}
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(done); err != nil {
		t.Errorf("Acquire(done) of a free lock, not queued = %v; want its one attempt to take it", err)
	}
}

// freePIDs returns n distinct pids that run no process here, from those
// the kernel handed out a while ago (behind ns_last_pid), which it hands
// out again only once it has gone round the whole range: the upper half
// of the range, taken before, was passed through by the suite's own
// processes within a test's few seconds where pid_max is 32768 (clean-clone
// CI: "pid 30816 ... runs a process here too"). Where the last pid cannot
// be read, or lies too near the start, the upper half it is.
func freePIDs(t *testing.T, n int) []int {
	t.Helper()
	pidMax := readInt(t, "/proc/sys/kernel/pid_max")
	lo, hi := pidMax/2, pidMax-1
	if b, err := os.ReadFile("/proc/sys/kernel/ns_last_pid"); err == nil {
		if last, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && last-1000-max(300, last-pidMax/4) >= 1000 {
			lo, hi = max(300, last-pidMax/4), last-1000
		}
	}
	var pids []int
	for len(pids) < n {
		pid := lo + rand.IntN(hi-lo)
		if !fsys.OS.ProcessAlive(pid) && (len(pids) == 0 || pids[0] != pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// readInt reads a number from a file of one, such as one in /proc.
func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// inPidNamespace returns cmd run in a new pid namespace with its own /proc,
// as the child of a shell that is the namespace's init and sets the pid
// the child gets. Standard input is passed on to the child, which a shell
// otherwise gives /dev/null in the background. Killing the command kills
// the whole namespace.
func inPidNamespace(t *testing.T, cmd *exec.Cmd, pid int) *exec.Cmd {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.Missing(t, "no unshare (util-linux): %v", err)
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "unshare --pid needs root")
	}
	const script = `echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid || exit 1
shift
exec 3<&0
"$@" <&3 3<&- &
wait $!`
	args := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script, "sh", strconv.Itoa(pid)}, cmd.Args...)
	ns := exec.Command(unshare, args...)
	ns.Env, ns.Dir = cmd.Env, cmd.Dir
	return ns
}

// nsChild is a child process in a pid namespace of its own, whose standard
// output the test reads a line at a time.
type nsChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	out    syncBuffer
	exited chan struct{}
	err    error // how it exited; read after exited is closed
}

// startInPidNamespace starts cmd in a pid namespace of its own, with pid
// pid there. It ends with the test.
func startInPidNamespace(t *testing.T, cmd *exec.Cmd, pid int) *nsChild {
	t.Helper()
	c := &nsChild{t: t, cmd: inPidNamespace(t, cmd, pid), lines: make(chan string, 100), exited: make(chan struct{})}
	c.cmd.Stderr = &c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&c.out, sc.Text())
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = c.cmd.Wait()
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		for range c.lines {
		}
		<-c.exited
	})
	return c
}

// expect returns the child's next line that starts with prefix, failing
// the test if the child ends or is silent too long first.
func (c *nsChild) expect(prefix string) string {
	c.t.Helper()
	bound := time.After(waitBound)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.exited
				c.t.Fatalf("child ended (%v) before it wrote %q; it wrote:\n%s", c.err, prefix, c.out.String())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-bound:
			c.t.Fatalf("child never wrote %q; it wrote:\n%s", prefix, c.out.String())
		}
	}
}

// wait closes the child's standard input and waits for it to end, failing
// the test unless it passes; it returns all that the child wrote.
func (c *nsChild) wait() string {
	c.t.Helper()
	c.stdin.Close()
	bound := time.After(waitBound)
	for open := true; open; {
		select {
		case _, open = <-c.lines:
		case <-bound:
			c.t.Fatalf("child did not end; it wrote:\n%s", c.out.String())
		}
	}
	<-c.exited
	if c.err != nil {
		c.t.Errorf("child: %v; it wrote:\n%s", c.err, c.out.String())
	}
	return c.out.String()
}

// waitExists waits for a file to appear at path.
func waitExists(t *testing.T, path string) {
	t.Helper()
	bound := time.After(waitBound)
	for {
		_, err := os.Lstat(path)
		if err == nil {
			return
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-bound:
			t.Fatalf("%s never appeared", path)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// links returns the link count of an open file: 0 once it was removed.
func links(t *testing.T, f *os.File) uint64 {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Nlink) // uint32 on linux/arm64
}
