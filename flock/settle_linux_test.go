package flock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// unlink(2) tells a file's watchers of its new link count (IN_ATTRIB)
// before it removes the name, holding the directory's lock throughout: a
// waiter that looks in between finds the file still at the name. These
// tests stage that window (second adversarial review of the wake's look).

func init() {
	roles["attrib-watchers"] = roleAttribWatchers
	roles["dirlock-holder"] = roleDirlockHolder
}

// roleAttribWatchers takes as many inotify instances as its user may have
// (LIMIT at most, if set), and for each path read from stdin adds a watch
// for IN_ATTRIB in every one, then says "ok": an unlink of that file then
// takes longer to tell its watchers before it removes the name.
func roleAttribWatchers() int {
	limit, err := strconv.Atoi(os.Getenv("LIMIT"))
	if err != nil {
		limit = 1024 // beyond any usual fs.inotify.max_user_instances (128)
	}
	var fds []int
	for len(fds) < limit {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		for _, fd := range fds {
			unix.InotifyAddWatch(fd, in.Text(), unix.IN_ATTRIB)
		}
		fmt.Println("ok")
	}
	return 0
}

// attribWatchers is a roleAttribWatchers process.
type attribWatchers struct {
	in  *os.File
	out *bufio.Reader
}

// startAttribWatchers starts a roleAttribWatchers process as u, or as
// this process's user with at most limit instances if u is nil.
func startAttribWatchers(t *testing.T, u *testenv.User, limit int) *attribWatchers {
	t.Helper()
	var cmd *exec.Cmd
	if u != nil {
		cmd = testenv.ChildAs(t, *u, "attrib-watchers")
	} else {
		cmd = testenv.Child(t, "attrib-watchers", "LIMIT="+strconv.Itoa(limit))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() {
		w.Close()
		cmd.Wait()
	})
	return &attribWatchers{in: w, out: bufio.NewReader(out)}
}

func (a *attribWatchers) watch(t *testing.T, path string) {
	t.Helper()
	fmt.Fprintln(a.in, path)
	if line, err := a.out.ReadString('\n'); strings.TrimSpace(line) != "ok" {
		t.Fatalf("watchers said %q, %v", line, err)
	}
}

// TestWaiterWokenByUnlinkAmidWatchers releases a lock flufl.lock's way
// (the lock path unlinked, the holder's claim kept, as a flufl.lock
// breaker leaves a crashed holder's) again and again, with three
// processes' worth of other inotify watches on each lock file (users A's
// and B's 128 instances each, and 64 of ours) to widen the unlink's
// window: every release must wake the waiter, whose retry policy is
// hourly. Every other round the holder refreshes first (an IN_ATTRIB),
// a moment before the unlink, so that the waiter looks again and
// re-arms around the unlink's telling: the unlink's own IN_ATTRIB then
// reaches no watch of the waiter's, and only arm's settling can tell that
// the file it watches is leaving. Without any settling some round lost
// its wake in 3 of 5 runs (third adversarial review); with settling only
// after an IN_ATTRIB (commit 63adefe), the refreshing rounds lost some of
// 400 (the review's `TestRev3RefreshThenUnlink`).
func TestWaiterWokenByUnlinkAmidWatchers(t *testing.T) {
	if testing.Short() {
		t.Skip("400 releases amid 320 watchers, about 5 s; skipped with -short")
	}
	a, b := testenv.Users(t)
	dir := testenv.ReachableDir(t)
	watchers := []*attribWatchers{startAttribWatchers(t, &a, 0), startAttribWatchers(t, &b, 0), startAttribWatchers(t, nil, 64)}
	const rounds = 400
	lost := 0
	for i := range rounds {
		path := filepath.Join(dir, "app"+strconv.Itoa(i)+".lck")
		claim := foreignHolder(t, path)
		for _, w := range watchers {
			w.watch(t, path)
		}
		waiter := newLock(t, path, hourly)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- waiter.Acquire(ctx) }()
		time.Sleep(time.Duration(5+i%7) * time.Millisecond) // into its wait, at varying points
		if i%2 == 1 {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(path, later, later); err != nil { // a refresh
				t.Fatal(err)
			}
			spin(time.Duration(i%100) * 5 * time.Microsecond)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if !roundWoken(t, i, waiter, done) {
			lost++
		}
		cancel()
		waiter.Close()
		os.Remove(claim)
	}
	if lost > 0 {
		t.Errorf("%d of %d releases did not wake the waiter", lost, rounds)
	}
}

// TestWaiterWokenAfterUnlinkAndRelink unlinks a lock file flufl.lock's
// way (its claim stays) just as a waiter arms its first watch, and links
// another holder's lock file at the name at once, which that holder
// releases (by rename) 20 ms later. The lock path lies 300 directories
// deep, so that each look-up of it is slow and a look's calls are spread
// out. A stat made after the two calls that prove a watch read the second
// file while the watch was on the first, leaving: the waiter took the
// second file's expiry, an hour ahead, for its timer, and heard nothing of
// its release (fourth adversarial review: 31 of 1,600 releases unseen).
func TestWaiterWokenAfterUnlinkAndRelink(t *testing.T) {
	if testing.Short() {
		t.Skip("150 releases amid 320 watchers, 10–40 s; skipped with -short")
	}
	a, b := testenv.Users(t)
	deep := testenv.ReachableDir(t) + strings.Repeat("/d", 300)
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(deep, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	watchers := []*attribWatchers{startAttribWatchers(t, &a, 0), startAttribWatchers(t, &b, 0), startAttribWatchers(t, nil, 64)}
	const rounds = 150
	lost := 0
	for i := range rounds {
		name := "app" + strconv.Itoa(i) + ".lck"
		path := filepath.Join(deep, name)
		claimA := foreignHolder(t, path)
		for _, w := range watchers {
			w.watch(t, path)
		}
		claimB := path + "|elsewhere|4243|1"
		writeAged(t, claimB, claimB, -time.Hour)
		waiter := newLock(t, path, hourly)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		next, err := unix.Dup(0) // the lowest free descriptor: the waiter's inotify instance will be about there
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(next)
		done := make(chan error, 1)
		go func() { done <- waiter.Acquire(ctx) }()
		if !inotifyAppears(next) {
			select {
			case err := <-done:
				t.Fatalf("Acquire = %v before the release", err)
			default:
				if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC); err != nil {
					// Other processes of this user hold them all (128 by
					// default): several suites running at once.
					t.Skipf("the waiter made no inotify instance, and none is to be had: %v (fs.inotify.max_user_instances)", err)
				} else {
					unix.Close(fd)
				}
				t.Fatal("the waiter made no inotify instance")
			}
		}
		spin(time.Duration(i%100) * 3 * time.Microsecond)
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Linkat(dfd, filepath.Base(claimB), dfd, name, 0); err == nil {
			time.Sleep(20 * time.Millisecond)
			if err := unix.Renameat(dfd, name, dfd, name+".gone"); err != nil {
				t.Fatal(err)
			}
		} else if !errors.Is(err, unix.EEXIST) { // EEXIST: the waiter took the lock first
			t.Fatal(err)
		}
		if !roundWoken(t, i, waiter, done) {
			lost++
		}
		cancel()
		waiter.Close()
		os.Remove(claimA)
		os.Remove(claimB)
		os.Remove(path + ".gone")
	}
	if lost > 0 {
		t.Errorf("%d of %d releases did not wake the waiter", lost, rounds)
	}
}

// inotifyAppears spins until one of this process's descriptors from n on
// is an inotify instance, for at most a second, and reports whether one
// did.
func inotifyAppears(n int) bool {
	buf := make([]byte, 64)
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		for fd := n; fd < n+32; fd++ {
			k, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf)
			if err == nil && string(buf[:k]) == "anon_inode:inotify" {
				return true
			}
		}
	}
	return false
}

// roundWoken waits for round i's Acquire and releases the lock it took,
// reporting whether it took it: false if the release went unseen (the
// Acquire ran out of time, an hourly policy's sleep unbroken).
func roundWoken(t *testing.T, i int, waiter *flock.Lock, done <-chan error) bool {
	t.Helper()
	if err := <-done; err != nil {
		t.Logf("round %d: %v", i, err)
		return false
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("round %d: Release() = %v", i, err)
	}
	return true
}

// spin busies this goroutine for d, to place a step more finely than a
// sleep can.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// roleDirlockHolder holds directory DIR's lock as an unlink(2) does
// while the file it removes is busy: a write(2) to DIR/victim from a page
// that faults through userfaultfd holds the victim's inode lock, and an
// unlink of the victim then waits for it with DIR locked. It says
// "locked" on stdout (or "unavailable: why" where userfaultfd is), and
// lets the fault through after HOLD.
func roleDirlockHolder() int {
	dir := os.Getenv("DIR")
	victim := filepath.Join(dir, "victim")
	fd, err := unix.Open(victim, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	uffd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if e != 0 {
		fmt.Println("unavailable: userfaultfd:", e)
		return 0
	}
	api := [3]uint64{0xAA, 0, 0} // struct uffdio_api, UFFD_API
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc018aa3f, uintptr(unsafe.Pointer(&api))); e != 0 {
		fmt.Println("unavailable: UFFDIO_API:", e)
		return 0
	}
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	reg := [4]uint64{uint64(uintptr(unsafe.Pointer(&mem[0]))), 4096, 1 /* MODE_MISSING */, 0} // struct uffdio_register
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, 0xc020aa00, uintptr(unsafe.Pointer(&reg))); e != 0 {
		fmt.Println("unavailable: UFFDIO_REGISTER:", e)
		return 0
	}
	wrote, unlinked := make(chan error, 1), make(chan error, 1)
	go func() { _, err := unix.Write(fd, mem); wrote <- err }()
	time.Sleep(100 * time.Millisecond) // into the fault, holding the victim's lock
	go func() { unlinked <- unix.Unlink(victim) }()
	time.Sleep(100 * time.Millisecond) // into the unlink, holding DIR's
	select {
	case err := <-unlinked:
		fmt.Fprintln(os.Stderr, "the unlink did not wait:", err)
		return exitError
	default:
	}
	fmt.Println("locked")
	time.Sleep(envDuration("HOLD", 5*time.Second))
	unix.Close(int(uffd)) // the fault goes through without userfaultfd
	<-wrote
	if err := <-unlinked; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	return 0
}

// TestSettleDoesNotHoldUpTheProcess refreshes a lock that a waiter
// watches, while an unlink in the lock's directory is held up: the
// waiter's look settles, waiting for that unlink, and must do so
// in a system call the runtime knows of. A raw one kept its P, so that a
// collection (a stop of the world) waited for the unlink to end (second
// adversarial review). The collection must end while the unlink is still
// held up: the victim is still there.
func TestSettleDoesNotHoldUpTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("holds an unlink up for 5 s; skipped with -short")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	// A lock file of one link (a no-links holder's), which every look
	// settles before it trusts.
	writeAged(t, path, path+"|elsewhere|4242|1", -time.Hour)
	waiter := newLock(t, path, hourly)
	done := waitFor(t, waiter)
	cmd := testenv.Child(t, "dirlock-holder", "DIR="+dir, "HOLD=5s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cmd.Wait(); err != nil {
			t.Errorf("dirlock-holder: %v", err)
		}
		os.Remove(path)
		if err := <-done; err != nil {
			t.Errorf("Acquire after the release = %v", err)
		} else {
			waiter.Release()
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if why, ok := strings.CutPrefix(line, "unavailable: "); ok {
		t.Skipf("the directory's lock cannot be held here: %s", why)
	}
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("dirlock-holder said %q, %v", line, err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the waiter's reader into its settling
	runtime.GC()
	if _, err := os.Lstat(filepath.Join(dir, "victim")); errors.Is(err, os.ErrNotExist) {
		t.Error("a collection waited for an unlink in the lock's directory to end: the waiter's settling holds its P")
	}
}
