//go:build unix

package flock_test

// Tests on a real network filesystem: two sshfs mounts of one directory
// (two clients, each with its own caches) and an sshfs mount on which
// link(2) fails. .ci/setup prepares them; without it these tests skip,
// and under CI=true they fail.
//
// What sshfs does that a lock must survive: stat reports a link count of
// 1; link onto an existing name may fail with EPERM; file times have 1 s
// resolution; and attributes, read by path, come from a cache that
// outlives the file (sshfs keeps them for 20 s, keyed by path).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// waitBound bounds each wait in these tests, so that a broken lock fails
// the test rather than hanging it. It is never a measure of speed.
const waitBound = 2 * time.Minute

func boundedContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// Environment of the mutual-exclusion workers.
const (
	envLockDir = "NFSFLOCK_NETFS_LOCKDIR" // where the worker's lock file is, through its own mount
	envReferee = "NFSFLOCK_NETFS_REFEREE" // where the marker and counter are
	envRounds  = "NFSFLOCK_NETFS_ROUNDS"
)

// TestNetFSMutualExclusion runs worker processes, half locking through
// mount A and half through mount B, each taking the lock many times. In
// each critical section a worker creates a marker file with O_EXCL, which
// fails if another worker is inside too, and increments a counter with a
// pause between read and write, which loses counts if two overlap.
//
// The marker and counter (the referee) are reached through mount A only,
// so that the referee's own view is never stale: a kernel that has seen a
// file through one mount may report it still there after another mount
// removed it.
func TestNetFSMutualExclusion(t *testing.T) {
	if testenv.Role() == "worker" {
		netfsWorker(t)
		return
	}
	if testing.Short() {
		t.Skip("-short: 6 processes on two sshfs mounts take 20 turns each (about 10 s); it runs without -short, as under .ci/test")
	}
	storm(t)
	a, b := testenv.SSHFS(t)
	const workers, rounds = 6, 20
	referee := filepath.Join(a, "referee")
	if err := os.Mkdir(referee, 0o755); err != nil {
		t.Fatal(err)
	}
	writeCounter(t, referee, 0)

	type run struct {
		view string
		out  bytes.Buffer
		err  error
		done chan struct{}
	}
	runs := make([]*run, workers)
	for i := range runs {
		r := &run{view: a, done: make(chan struct{})}
		if i%2 == 1 {
			r.view = b
		}
		runs[i] = r
		cmd := testenv.Command(t, "worker",
			envLockDir+"="+r.view, envReferee+"="+referee, envRounds+"="+strconv.Itoa(rounds))
		cmd.Stdout, cmd.Stderr = &r.out, &r.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(r.done)
			r.err = cmd.Wait()
		}()
	}
	for i, r := range runs {
		<-r.done
		if r.err != nil {
			t.Errorf("worker %d (through %s): %v\n%s", i, r.view, r.err, r.out.Bytes())
		}
	}
	if got, want := readCounter(t, referee), workers*rounds; got != want {
		t.Errorf("counter = %d after %d workers of %d rounds; want %d (critical sections overlapped)", got, workers, rounds, want)
	}
	if names := dirNames(t, a); len(names) != 1 || names[0] != "referee" {
		t.Errorf("left in the lock directory: %q; want only the referee", names)
	}
}

func netfsWorker(t *testing.T) {
	rounds, err := strconv.Atoi(os.Getenv(envRounds))
	if err != nil {
		t.Fatalf("%s: %v", envRounds, err)
	}
	referee := os.Getenv(envReferee)
	l, err := flock.New(filepath.Join(os.Getenv(envLockDir), "shared.lck"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	marker := filepath.Join(referee, "inside")
	for i := range rounds {
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("round %d: Acquire = %v", i, err)
		}
		f, merr := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if merr != nil {
			holder, _ := os.ReadFile(marker)
			t.Errorf("round %d: pid %d holds the lock and finds pid %s inside too (%v)", i, os.Getpid(), holder, merr)
		} else {
			fmt.Fprint(f, os.Getpid())
			f.Close()
		}
		n := readCounter(t, referee)
		time.Sleep(time.Millisecond) // widen the window an overlap would need
		writeCounter(t, referee, n+1)
		if merr == nil {
			if err := os.Remove(marker); err != nil {
				t.Errorf("round %d: %v", i, err)
			}
		}
		if err := l.Release(); err != nil {
			t.Fatalf("round %d: Release = %v", i, err)
		}
	}
}

func readCounter(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("counter: %v", err)
	}
	return n
}

// writeCounter writes n at a fixed width, so that the file's size never
// changes: a size read from a stale cache cannot truncate a read.
func writeCounter(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "counter"), fmt.Appendf(nil, "%012d\n", n), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNetFSOperations checks the lock's methods on sshfs, where stat
// reports a link count of 1 for a file with two names: ownership must be
// decided by contents, not link counts.
func TestNetFSOperations(t *testing.T) {
	a, b := testenv.SSHFS(t)
	ctx := boundedContext(t)
	const lifetime = time.Minute
	la := newLock(t, filepath.Join(a, "app.lck"), flock.WithLifetime(lifetime))
	lb := newLock(t, filepath.Join(b, "app.lck"))

	if s, err := la.State(); err != nil || s != flock.Unlocked {
		t.Errorf("before Acquire: State() = %v, %v; want %v", s, err, flock.Unlocked)
	}
	before := time.Now()
	if err := la.Acquire(ctx); err != nil {
		t.Fatalf("Acquire(ctx) = %v", err)
	}
	after := time.Now()
	fi, err := os.Stat(la.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		t.Logf("sshfs reports a link count of %d for the held lock file", st.Nlink)
	}

	if ok, err := la.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() = %v, %v; want true, nil", ok, err)
	}
	if s, err := la.State(); err != nil || s != flock.Ours {
		t.Errorf("State() = %v, %v; want %v", s, err, flock.Ours)
	}
	host, _ := os.Hostname()
	want := flock.Details{Hostname: host, PID: os.Getpid(), LockFile: la.Path()}
	for _, l := range []*flock.Lock{la, lb} {
		if d, err := l.Details(); err != nil || d != want {
			t.Errorf("Details() through %s = %+v, %v; want %+v", filepath.Dir(l.Path()), d, err, want)
		}
	}
	// sshfs keeps whole seconds: the expiry may read up to 1 s early. The
	// time base learns the server's clock there from whole-second stamps,
	// and writes the expiry from the latest the server's clock may show:
	// up to 1 s late.
	exp, err := la.Expiration()
	if err != nil || exp.Before(before.Add(lifetime-time.Second)) || exp.After(after.Add(lifetime+time.Second)) {
		t.Errorf("Expiration() = %v, %v; want within [%v, %v]", exp, err, before.Add(lifetime-time.Second), after.Add(lifetime+time.Second))
	}
	// Through B, the holder is this process, alive and unexpired.
	if s, err := lb.State(); err != nil || s != flock.Unknown {
		t.Errorf("State() through B = %v, %v; want %v", s, err, flock.Unknown)
	}
	if ok, err := lb.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire() through B while held through A = %v, %v; want false, nil", ok, err)
	}
	if err := la.Refresh(0); err != nil {
		t.Errorf("Refresh(0) = %v", err)
	}

	if err := la.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if s, err := la.State(); err != nil || s != flock.Unlocked {
		t.Errorf("after Release: State() = %v, %v; want %v", s, err, flock.Unlocked)
	}
	if names := dirNames(t, a); len(names) != 0 {
		t.Errorf("after Release: left %q", names)
	}
	// B may still believe, from its own cache, that the lock file is
	// there; Acquire waits that out.
	if err := lb.Acquire(ctx); err != nil {
		t.Fatalf("Acquire(ctx) through B after release through A = %v", err)
	}
	if ok, err := lb.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() through B = %v, %v; want true, nil", ok, err)
	}
	if err := la.Release(); !errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("Release() through A of B's lock = %v; want ErrNotLocked", err)
	}
	if err := lb.Release(); err != nil {
		t.Errorf("Release() through B = %v", err)
	}
	if names := dirNames(t, b); len(names) != 0 {
		t.Errorf("after Release through B: left %q", names)
	}
}

// TestNetFSBreakExpired takes a short lock through A and lets it expire;
// a Lock on B breaks it, removes A's claim, and A finds its lock lost
// without disturbing B's.
func TestNetFSBreakExpired(t *testing.T) {
	t.Parallel()
	a, b := testenv.SSHFS(t)
	ctx := boundedContext(t)
	la := newLock(t, filepath.Join(a, "app.lck"), flock.WithLifetime(time.Second))
	lb := newLock(t, filepath.Join(b, "app.lck"), flock.WithClockSlop(time.Second))
	if err := la.Acquire(ctx); err != nil {
		t.Fatalf("Acquire(ctx) through A = %v", err)
	}
	claimA := filepath.Join(b, filepath.Base(la.ClaimPath()))
	if err := lb.Acquire(ctx); err != nil {
		t.Fatalf("Acquire(ctx) through B of an expired lock = %v", err)
	}
	if s, err := lb.State(); err != nil || s != flock.Ours {
		t.Errorf("State() through B = %v, %v; want %v", s, err, flock.Ours)
	}
	if _, err := os.Lstat(claimA); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("A's claim after B broke its lock: Lstat = %v; want not exist", err)
	}
	// A's Release must find the lock no longer its own and leave B's alone.
	if err := la.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Release() through A after the break = %v; want ErrLockLost", err)
	}
	if ok, err := lb.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() through B after A's Release = %v, %v; want true, nil", ok, err)
	}
	if d, err := la.Details(); err != nil || d.PID != os.Getpid() || d.LockFile != lb.Path() {
		t.Errorf("Details() through A = %+v, %v; want B's lock %s", d, err, lb.Path())
	}
	if err := lb.Release(); err != nil {
		t.Errorf("Release() through B = %v", err)
	}
	if names := dirNames(t, b); len(names) != 0 {
		t.Errorf("left %q", names)
	}
}

// TestNetFSStaleAttributes: B has seen an expired lock file; A breaks it
// and takes a fresh, long lock under the same name. B's attribute cache,
// keyed by path, may still say the old expiry, but B must not take the
// fresh lock: what it moves aside before removing must be what it judged.
func TestNetFSStaleAttributes(t *testing.T) {
	t.Parallel()
	a, b := testenv.SSHFS(t)
	ctx := boundedContext(t)
	short := newLock(t, filepath.Join(a, "app.lck"), flock.WithLifetime(time.Second))
	fresh := newLock(t, filepath.Join(a, "app.lck"), flock.WithLifetime(time.Hour), flock.WithClockSlop(time.Second))
	lb := newLock(t, filepath.Join(b, "app.lck"), flock.WithClockSlop(time.Second))
	if err := short.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := lb.Expiration() // B caches the short lock's attributes
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Acquire(ctx); err != nil { // waits for the expiry, then breaks
		t.Fatal(err)
	}
	seen, err := lb.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("B reads the expiry %v of the lock taken by A; the old expiry was %v (stale: %v)", seen, old, seen.Equal(old))
	for i := range 20 {
		if ok, err := lb.TryAcquire(); ok || err != nil {
			t.Fatalf("TryAcquire() #%d through B of a lock held for an hour = %v, %v; want false, nil", i, ok, err)
		}
	}
	if ok, err := fresh.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() of the fresh lock = %v, %v; want true, nil", ok, err)
	}
}

// TestNetFSContentionIsNotLinkUnsupported: on sshfs a link(2) onto a
// name that appeared after the kernel looked it up fails with EPERM, the
// errno sshfs also gives when hard links are disabled. When the holder
// then releases before the waiter reads the lock file, the waiter sees a
// refusal with no lock file in the way. Twice in one attempt, and Acquire
// used to report ErrLinkUnsupported on a filesystem with working links.
// Many Locks on both mounts taking and releasing at once provoke it.
func TestNetFSContentionIsNotLinkUnsupported(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 8 Locks on two sshfs mounts take 150 turns each (about 25 s); it runs without -short, as under .ci/test")
	}
	storm(t)
	a, b := testenv.SSHFS(t)
	// The bound is per wait, not for the whole test: a loaded machine
	// makes the turns slow, not wrong.
	const locks, rounds = 8, 150
	errs := make(chan error, locks)
	for i := range locks {
		dir := a
		if i%2 == 1 {
			dir = b
		}
		l := newLock(t, filepath.Join(dir, "app.lck"))
		go func() {
			for n := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), waitBound)
				err := l.Acquire(ctx)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("round %d: Acquire(ctx) through %s = %w", n, dir, err)
					return
				}
				if err := l.Release(); err != nil {
					errs <- fmt.Errorf("round %d: Release() through %s = %w", n, dir, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range locks {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
