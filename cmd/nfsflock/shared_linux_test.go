package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// Locks of other users, staged with the real users of .ci/setup
// (NFSFLOCK_USER_A and NFSFLOCK_USER_B): without them, or as non-root, these
// tests skip, and under CI=true they fail.

// A sharedStage is a sticky world-writable directory (1777, like /tmp) and
// a copy of nfsflock that the test users can run.
type sharedStage struct {
	dir    string // the sticky directory
	binary string // nfsflock, where every user can run it
	a, b   testenv.User
}

func newSharedStage(t *testing.T) *sharedStage {
	t.Helper()
	a, b := testenv.Users(t)
	top := testenv.ReachableDir(t)
	s := &sharedStage{dir: filepath.Join(top, "sticky"), binary: filepath.Join(top, "nfsflock"), a: a, b: b}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Mkdir's mode is cut by the umask, and leaves out the sticky bit.
	if err := os.Chmod(s.dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.binary, src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.binary, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// command returns nfsflock with args, to be run as u in the sticky
// directory.
func (s *sharedStage) command(u testenv.User, args ...string) *exec.Cmd {
	cmd := exec.Command(s.binary, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
	}
	return cmd
}

// An expired lock of another user in a sticky directory, which this user
// may not break, is not called breakable: the message at the timeout (-w
// and -n alike) and the line shown while waiting on a terminal say whose
// file is in the way, as README promises. The other user's nfsflock takes
// the lock for real and dies by SIGKILL, leaving its lock to expire.
func TestOtherUsersExpiredLock(t *testing.T) {
	t.Parallel()
	s := newSharedStage(t)
	holder := s.command(s.a, "-l", "1", "L", "--", "sh", "-c", `touch ready; exec sleep 600`)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other user's command to start", func() bool { return exists(filepath.Join(s.dir, "ready")) })
	// Its command gets the parent-death signal, and its lock file stays.
	holder.Process.Kill()
	holder.Wait()
	waitFor(t, "the other user's lock to be breakable by its times", func() bool {
		return status(t, s.dir, "--clock-slop", "1", "L").Breakable
	})

	owner := fmt.Sprintf("the lock is owned by uid %d: only that user or root can break it", s.a.UID)
	for _, args := range [][]string{{"--clock-slop", "1", "-w", "1", "L", "true"}, {"--clock-slop", "1", "-n", "L", "true"}} {
		var stderr strings.Builder
		cmd := s.command(s.b, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitStatus(t, err); code != exitUnavailable || !strings.Contains(stderr.String(), owner) || strings.Contains(stderr.String(), "; breakable") {
			t.Errorf("as the other user in the sticky directory, nfsflock %q = %d, stderr %q; want %d and %q, not breakable", args, code, stderr.String(), exitUnavailable, owner)
		}
	}

	master, slave := openPTY(t)
	cmd := s.command(s.b, "--clock-slop", "1", "-w", "1.5", "L", "true")
	cmd.Stderr = slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	seen := readAll(master)
	code := exitStatus(t, cmd.Wait())
	shown := seen()
	if code != exitUnavailable || !strings.Contains(shown, "nfsflock: waiting for ") {
		t.Fatalf("as the other user on a terminal, nfsflock -w 1.5 L true = %d, showing %q; want %d and the waiting line", code, shown, exitUnavailable)
	}
	for line := range strings.SplitSeq(shown, "\r") {
		if strings.HasPrefix(line, "nfsflock: waiting for") && !strings.Contains(line, owner) {
			t.Errorf("as the other user on a terminal, the waiting line %q does not say %q", line, owner)
		}
	}
}

// openPTY returns a pseudo-terminal's two sides; nfsflock writes to the
// slave and the test reads the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// readAll reads r until it ends (a terminal's master, once no process has
// the slave open) and returns a function that waits for that end and
// returns all that was read.
func readAll(r io.Reader) func() string {
	var (
		b    strings.Builder
		once sync.Once
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return func() string {
		once.Do(func() { <-done })
		return b.String()
	}
}
