package flock_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// These tests wait with a retry policy of an hour between attempts: only
// a wake from the system, or the expiry the waiter reads, can end such a
// wait within the test's deadline.

func init() {
	roles["releaser"] = roleReleaser
	roles["instanceless-waiter"] = roleInstancelessWaiter
}

// roleReleaser takes the lock, says so on stdout, and releases it when
// its stdin closes.
func roleReleaser() int {
	l := childLock()
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	fmt.Println("held")
	bufio.NewReader(os.Stdin).ReadString('\n')
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitLost
	}
	return 0
}

var hourly = flock.WithRetry(retry.Constant(time.Hour))

// TestWaiterWokenByRelease has another process release a lock that a
// waiter, on each local filesystem the suites cover (inotify's events on
// a file differ by filesystem: overlayfs passes them on from its upper
// layer), waits for.
func TestWaiterWokenByRelease(t *testing.T) {
	onEachFilesystem(t, testWaiterWokenByRelease)
}

func testWaiterWokenByRelease(t *testing.T, dir string) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(dir, "app.lck")
	cmd := testenv.Child(t, "releaser", "LOCK="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "held" {
		t.Fatalf("releaser said %q, %v", line, err)
	}
	waiter := newLock(t, path, hourly)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	mustBlock(t, done)
	in.Close()
	if err := <-done; err != nil {
		t.Fatalf("Acquire after the holder's release = %v; want nil", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("releaser: %v", err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// TestCrowdWokenInTurn has a crowd of waiters take one lock in turn,
// each released as soon as taken: every release must wake the rest, or
// some waiter sleeps for its hour.
func TestCrowdWokenInTurn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const waiters = 20
	path := filepath.Join(t.TempDir(), "app.lck")
	holder := newLock(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := holder.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		l := newLock(t, path, hourly)
		wg.Go(func() {
			if err := l.Acquire(ctx); err != nil {
				errs <- fmt.Errorf("Acquire() = %w", err)
				return
			}
			if err := l.Release(); err != nil {
				errs <- fmt.Errorf("Release() = %w", err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let them settle into their waits
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWaiterBreaksAtExpiry kills a holder; its waiter must break the lock
// when its lifetime has run out, not an hour later.
func TestWaiterBreaksAtExpiry(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "app.lck")
	cmd, _ := startHolder(t, "LOCK="+path, "LIFETIME=1s")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waiter := newLock(t, path, hourly, flock.WithClockSlop(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waiter.Acquire(ctx); err != nil {
		t.Fatalf("Acquire() of a dead holder's lock = %v; want nil", err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// TestDeadOwnerWaiterWokenByExit kills a holder whose lifetime is an
// hour; a waiter with WithDeadOwnerBreak must take the lock once the
// holder is gone, woken by its exit rather than by its hourly retry.
func TestDeadOwnerWaiterWokenByExit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "app.lck")
	cmd, _ := startHolder(t, "LOCK="+path, "LIFETIME=1h")
	waiter := newLock(t, path, hourly, flock.WithDeadOwnerBreak())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	mustBlock(t, done)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Acquire() of a killed holder's lock = %v; want nil", err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// foreignHolder puts at path the lock file of a holder on another host,
// expiring in an hour, as flufl.lock makes it: a claim file linked to the
// lock path. It returns the claim's path.
func foreignHolder(t *testing.T, path string) string {
	t.Helper()
	claim := path + "|elsewhere|4242|1234567890"
	writeAged(t, claim, claim, -time.Hour)
	if err := os.Link(claim, path); err != nil {
		t.Fatal(err)
	}
	return claim
}

// waitFor starts l's Acquire and checks that it blocks.
func waitFor(t *testing.T, l *flock.Lock) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- l.Acquire(ctx) }()
	mustBlock(t, done)
	return done
}

// TestWaiterWokenByUnlinkWhileClaimStays releases a lock as flufl.lock
// does, by unlinking the lock path while the holder's claim still names
// the file (as it does between its two unlinks, or for good after a
// flufl.lock breaker unlinked it): only the file's link count changes.
func TestWaiterWokenByUnlinkWhileClaimStays(t *testing.T) {
	onEachFilesystem(t, testWaiterWokenByUnlinkWhileClaimStays)
}

func testWaiterWokenByUnlinkWhileClaimStays(t *testing.T, dir string) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(dir, "app.lck")
	foreignHolder(t, path)
	waiter := newLock(t, path, hourly)
	done := waitFor(t, waiter)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Acquire after the lock path was unlinked = %v; want nil", err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// TestWaiterWatchesTheFileThatReplacedIt replaces the lock file a waiter
// watches with another holder's: the waiter, woken, must find the lock
// held and watch the new file, whose removal must wake it in turn.
func TestWaiterWatchesTheFileThatReplacedIt(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	foreignHolder(t, path)
	waiter := newLock(t, path, hourly)
	done := waitFor(t, waiter)
	next := filepath.Join(dir, "next")
	writeAged(t, next, path+"|yonder|4343|987654321", -time.Hour)
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	mustBlock(t, done)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Acquire after the second holder's release = %v; want nil", err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// TestWaiterSurvivesFlappingHolder replaces the lock file again and again
// under a crowd of waiters, then releases it: a file replaced between the
// path lookup and the watch's attaching inside inotify_add_watch left its
// waiter watching a file no longer at the name, which no release woke
// (adversarial review; it failed about one run in three before the
// second inotify_add_watch that proves the watch).
func TestWaiterSurvivesFlappingHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("replaces the lock file for 3 s; skipped with -short")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const waiters = 8
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	foreignHolder(t, path)
	dones := make([]<-chan error, waiters)
	for i := range dones {
		dones[i] = waitFor(t, newLock(t, path, hourly, flock.WithLifetime(time.Hour)))
	}
	future := time.Now().Add(time.Hour) // fresh inodes, in their lease
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for f := range 2 {
		wg.Go(func() {
			next := filepath.Join(dir, fmt.Sprintf("next%d", f))
			for time.Now().Before(stop) {
				if err := os.WriteFile(next, nil, 0o644); err != nil {
					t.Error(err)
					return
				}
				os.Chtimes(next, future, future)
				if err := os.Rename(next, path); err != nil {
					t.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	all := make(chan error, waiters)
	for _, done := range dones {
		go func() { all <- <-done }()
	}
	timeout := time.After(20 * time.Second)
	for i := range waiters {
		select {
		case err := <-all:
			if err != nil {
				t.Fatalf("Acquire = %v", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d waiters not woken after %d replacements", waiters-i, waiters, n.Load())
		}
		os.Remove(path) // let the next one in (the winner counts it lost)
	}
}

// TestUnreadableLockFileFailsFast has a user wait for a lock file it may
// not read: Acquire fails at once with a permission error, as the full
// look has always made it, rather than wait by the file's times: another
// user's file whose group and others may read it, and a file of the
// waiter's own user that its owner may not read (adversarial review: the
// quick wait judged readability by bits that do not apply).
func TestUnreadableLockFileFailsFast(t *testing.T) {
	a, b := testenv.Users(t)
	for _, tc := range []struct {
		name  string
		owner testenv.User
		mode  os.FileMode
	}{{"group-member", b, 0o604}, {"owner", a, 0o044}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.ReachableDir(t)
			if err := os.Chown(dir, int(a.UID), int(a.GID)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "app.lck")
			writeAged(t, path, path+"|elsewhere|4242|1", -time.Hour)
			if err := os.Chown(path, int(tc.owner.UID), int(tc.owner.GID)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			ag := startAgent(t, "waiter", &a)
			ag.newLock(path, 5*time.Second) // the timeout only bounds a wrong wait
			if r := ag.do(request{Op: "acquire"}); !r.is("permission") {
				t.Errorf("Acquire of a lock file its user cannot read = %q; want a permission error", r.Err)
			}
		})
	}
}

// TestWaiterBreaksAfterCrashedBreaker leaves an expired lock whose break
// a crashed breaker's lock refuses for a few seconds: nothing at the lock
// path changes to wake the waiter, which must look again by itself.
func TestWaiterBreaksAfterCrashedBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a breakers' lock, about 6 s; skipped with -short")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "app.lck")
	writeAged(t, path, path+"|elsewhere|4242|1", time.Hour)             // expired
	writeAged(t, path+".break", path+"|elsewhere|4343|2", -time.Second) // breaker's lease
	waiter := newLock(t, path, hourly, flock.WithClockSlop(0))
	expectAcquired(t, waiter, waitFor(t, waiter), 40*time.Second)
}

// TestWaiterBreaksExpiredReplacement replaces the watched lock file with
// an expired one: the woken waiter, finding a file at the name, must break
// it rather than sleep on.
func TestWaiterBreaksExpiredReplacement(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	writeAged(t, path, path+"|elsewhere|4242|1", -2*time.Second)
	waiter := newLock(t, path, hourly, flock.WithClockSlop(0))
	done := waitFor(t, waiter)
	stale := filepath.Join(dir, "stale")
	writeAged(t, stale, path+"|elsewhere|4343|2", time.Hour)
	if err := os.Rename(stale, path); err != nil {
		t.Fatal(err)
	}
	expectAcquired(t, waiter, done, 30*time.Second)
}

// TestWaiterRetimesForSoonerReplacement replaces a lock file in its lease
// for an hour, which a waiter watches, with one whose lease ends in two
// seconds: the look that follows the wake (made by the watch's reader
// while the waiter sleeps) must shorten the waiter's sleep to the new
// file's expiry, or the waiter sleeps for the hour.
func TestWaiterRetimesForSoonerReplacement(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	writeAged(t, path, path+"|elsewhere|4242|1", -time.Hour)
	waiter := newLock(t, path, hourly, flock.WithClockSlop(0))
	done := waitFor(t, waiter)
	soon := filepath.Join(dir, "soon")
	writeAged(t, soon, path+"|elsewhere|4343|2", -2*time.Second)
	if err := os.Rename(soon, path); err != nil {
		t.Fatal(err)
	}
	expectAcquired(t, waiter, done, 30*time.Second)
}

// roleInstancelessWaiter uses up its user's inotify instances, says
// "waiting" on stdout, and waits for the lock with an hourly retry policy
// for at most a minute; it exits 0 once it holds the lock.
func roleInstancelessWaiter() int {
	n := 0
	for ; ; n++ {
		if _, err := unix.InotifyInit1(unix.IN_CLOEXEC); err != nil {
			if !errors.Is(err, unix.EMFILE) {
				fmt.Fprintln(os.Stderr, "inotify_init1:", err)
				return exitError
			}
			break
		}
	}
	l, err := flock.New(os.Getenv("LOCK"), hourly)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	fmt.Println("waiting")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "Acquire with no inotify instance left (%d taken) = %v\n", n, err)
		return exitError
	}
	return 0
}

// TestWaiterWithoutInotifyInstance waits, as a user who has used up
// their inotify instances (a crowd of waiters beyond
// fs.inotify.max_user_instances, 128 by default over all of a user's
// processes, is such a user), for a lock that is then released: the
// waiter, with no watch to wake it and an hourly retry policy, must look
// again as often as a watched waiter does without an event, rather than
// sleep the hour (adversarial review of the wake's look).
func TestWaiterWithoutInotifyInstance(t *testing.T) {
	_, b := testenv.Users(t) // a user of its own: the instances are counted per user
	if max, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err != nil {
		t.Skipf("fs.inotify.max_user_instances: %v", err)
	} else if n, _ := strconv.Atoi(strings.TrimSpace(string(max))); n > 1024 {
		t.Skipf("fs.inotify.max_user_instances is %d: using them all up would first use up the descriptors the waiter needs", n)
	}
	dir := testenv.ReachableDir(t)
	if err := os.Chown(dir, int(b.UID), int(b.GID)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.lck")
	foreignHolder(t, path)
	cmd := testenv.ChildAs(t, b, "instanceless-waiter", "LOCK="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "waiting" {
		t.Fatalf("waiter said %q, %v", line, err)
	}
	time.Sleep(500 * time.Millisecond) // into its sleep
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("waiter = %v; want it to take the released lock", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter with no inotify instance slept on after the release")
	}
}

// expectAcquired waits for done, at most bound, and releases l.
func expectAcquired(t *testing.T, l *flock.Lock, done <-chan error, bound time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Acquire() = %v; want nil", err)
		}
	case <-time.After(bound):
		t.Fatal("the waiter slept on: the expired lock was not broken")
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}

// TestACLUnreadableLockFileFailsFast is TestUnreadableLockFileFailsFast
// with a lock file whose mode shows it readable to all (0644) but whose
// access control list denies the waiting user (second adversarial review
// of the wake: the quick wait trusted the mode's bits).
func TestACLUnreadableLockFileFailsFast(t *testing.T) {
	a, b := testenv.Users(t)
	dir := testenv.ReachableDir(t)
	if err := os.Chown(dir, int(a.UID), int(a.GID)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.lck")
	writeAged(t, path, path+"|elsewhere|4242|1", -time.Hour)
	if err := os.Chown(path, int(b.UID), int(b.GID)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", posixACL(a.UID), 0); err != nil {
		t.Skipf("no POSIX ACLs here: %v", err)
	}
	ag := startAgent(t, "waiter", &a)
	ag.newLock(path, 5*time.Second)
	if r := ag.do(request{Op: "acquire"}); !r.is("permission") {
		t.Errorf("Acquire of a lock file its user cannot read (ACL) = %q; want a permission error", r.Err)
	}
}

// posixACL encodes a system.posix_acl_access value: owner rw, the named
// user none, group r, mask r, other r (mode bits show 0644).
func posixACL(denied uint32) []byte {
	type ent struct {
		tag, perm uint16
		id        uint32
	}
	const undef = 0xffffffff
	ents := []ent{{0x01, 6, undef}, {0x02, 0, denied}, {0x04, 4, undef}, {0x10, 4, undef}, {0x20, 4, undef}}
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// TestDeadOwnerWaiterBreaksAfterCrashedBreaker is
// TestWaiterBreaksAfterCrashedBreaker for a lock in its lease whose holder
// on this host is dead, with WithDeadOwnerBreak: the waiter must look
// again by itself, as for an expired lock, rather than sleep until the
// lock's expiry (second adversarial review; older than the inode watch).
func TestDeadOwnerWaiterBreaksAfterCrashedBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a breakers' lock, about 6 s; skipped with -short")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "app.lck")
	cmd, _ := startHolder(t, "LOCK="+path, "LIFETIME=1h")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	writeAged(t, path+".break", path+"|elsewhere|4343|2", -time.Second) // breaker's lease
	waiter := newLock(t, path, hourly, flock.WithDeadOwnerBreak(), flock.WithClockSlop(0))
	expectAcquired(t, waiter, waitFor(t, waiter), 40*time.Second)
}
