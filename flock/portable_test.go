//go:build unix

// The helpers (onEachFilesystem, countMixed) and the mixing of linking
// and portable Locks are POSIX; on Windows every Lock is portable, and
// process_windows_test.go has the Windows contenders.

package flock_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestPortableProcessesExclude: processes that publish the lock file
// without hard links (WithPortable) and processes that link it take
// turns on one lock, on each filesystem; an O_EXCL marker catches any
// overlap.
func TestPortableProcessesExclude(t *testing.T) {
	storm(t)
	onEachFilesystem(t, func(t *testing.T, dir string) {
		countMixed(t, dir, dir, rounds(30))
	})
}

// rounds is n, or a few under -short.
func rounds(n int) int {
	if testing.Short() {
		return min(n, 3)
	}
	return n
}

// countMixed runs eight counter processes on one lock, seen through
// linkDir and portableDir (two views of one directory, or the same):
// half of them link, the others publish the portable way.
func countMixed(t *testing.T, linkDir, portableDir string, rounds int) {
	t.Helper()
	const procs = 8
	var cmds []*exec.Cmd
	for i := range procs {
		dir, env := linkDir, []string{}
		if i%2 == 1 {
			dir, env = portableDir, []string{"PORTABLE=1"}
		}
		env = append(env, "LOCK="+filepath.Join(dir, "app.lck"), "DIR="+dir, "ROUNDS="+strconv.Itoa(rounds))
		cmd := testenv.Child(t, "counter", env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	waitAll(t, cmds)
	b, _ := os.ReadFile(filepath.Join(linkDir, "counter"))
	if got := string(b); got != strconv.Itoa(procs*rounds) {
		t.Errorf("counter = %s; want %d", got, procs*rounds)
	}
	if names := dirNames(t, linkDir); len(names) != 1 {
		t.Errorf("left behind: %q", names)
	}
}

// TestPortableKilledHolderIsBroken: the lock of a holder that published
// it without links and was killed is broken once it has expired, by a
// process that links, and nothing is left behind. On each filesystem.
func TestPortableKilledHolderIsBroken(t *testing.T) {
	onEachFilesystemAtOnce(t, func(t *testing.T, dir string) {
		killedHolderBroken(t, dir, dir, flock.WithClockSlop(0))
	})
}

// killedHolderBroken starts a holder in holderDir that publishes without
// links, kills it, and has a Lock made with opts in breakerDir (a view of
// the same directory) take the lock once it has expired.
func killedHolderBroken(t *testing.T, holderDir, breakerDir string, opts ...flock.Option) {
	t.Helper()
	holder, _ := startHolder(t, "LOCK="+filepath.Join(holderDir, "app.lck"), "LIFETIME=1s", "PORTABLE=1")
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	l := newLock(t, filepath.Join(breakerDir, "app.lck"), opts...)
	if s, err := l.State(); err != nil || s != flock.Stale {
		t.Errorf("State() of a dead holder's lock = %v, %v; want stale", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release = %v", err)
	}
	if names := dirNames(t, breakerDir); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}
}

// TestNoLinkFS: on a real filesystem that refuses link(2) (sshfs with
// -o disable_hardlink), Acquire publishes the lock file by creating it,
// by itself; processes there and processes that link through another
// client of the same directory exclude each other; a killed holder's
// lock is broken after it expires; nothing is left behind.
func TestNoLinkFS(t *testing.T) {
	t.Parallel()
	noLink := testenv.SSHFSNoLink(t)
	linked := filepath.Join(os.Getenv(testenv.SSHFSAEnv), filepath.Base(noLink))
	if _, err := os.Stat(linked); err != nil {
		testenv.Missing(t, "%s and %s are not views of one directory: %v", testenv.SSHFSNoLinkEnv, testenv.SSHFSAEnv, err)
	}
	t.Run("alone", func(t *testing.T) {
		l := newLock(t, filepath.Join(noLink, "solo.lck"))
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatalf("Acquire() = %v", err)
		}
		if s, err := l.State(); err != nil || s != flock.Ours {
			t.Errorf("State() = %v, %v; want ours", s, err)
		}
		if err := l.Refresh(0); err != nil {
			t.Errorf("Refresh() = %v", err)
		}
		other := newLock(t, filepath.Join(linked, "solo.lck"))
		if ok, err := other.TryAcquire(); ok || err != nil {
			t.Errorf("TryAcquire() through a client with links = %v, %v; want false, nil", ok, err)
		}
		if d, err := other.Details(); err != nil || d.PID != os.Getpid() {
			t.Errorf("Details() through a client with links = %+v, %v", d, err)
		}
		if err := l.Release(); err != nil {
			t.Errorf("Release() = %v", err)
		}
		if names := dirNames(t, noLink); len(names) != 0 {
			t.Errorf("left behind: %q", names)
		}
	})
	t.Run("mixed", func(t *testing.T) {
		countMixed(t, linked, noLink, rounds(10))
		os.Remove(filepath.Join(noLink, "counter"))
	})
	t.Run("killed", func(t *testing.T) {
		killedHolderBroken(t, noLink, noLink, flock.WithClockSlop(0))
	})
	t.Run("refresh after a forced break", func(t *testing.T) {
		// sshfs changes times by path, even through a descriptor: a
		// holder whose lock file was broken and taken must not re-time
		// the new holder's lock file with its Refresh.
		export := filepath.Join(os.Getenv("NFSFLOCK_CI_STATE"), "export", filepath.Base(noLink))
		if _, err := os.Stat(export); err != nil {
			testenv.Missing(t, "the sshfs export behind %s is not at %s: %v", noLink, export, err)
		}
		old := newLock(t, filepath.Join(noLink, "forced.lck"), flock.WithLifetime(10*time.Second))
		if err := old.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		operator := newLock(t, filepath.Join(linked, "forced.lck"))
		if broke, err := operator.Break(true); !broke || err != nil {
			t.Fatalf("Break(true) = %v, %v", broke, err)
		}
		holder := newLock(t, filepath.Join(linked, "forced.lck"), flock.WithLifetime(time.Hour))
		if err := holder.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := old.Refresh(0); !errors.Is(err, flock.ErrLockLost) {
			t.Errorf("old.Refresh() after a forced break = %v; want ErrLockLost", err)
		}
		fi, err := os.Stat(filepath.Join(export, "forced.lck"))
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(fi.ModTime()); left < 50*time.Minute {
			t.Errorf("the new holder's lock file expires in %v; want about an hour: the old holder's refresh re-timed it", left.Round(time.Second))
		}
		if err := holder.Release(); err != nil {
			t.Errorf("holder.Release() = %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		// A crash between the create and the write leaves an empty lock
		// file: it is judged by its time alone.
		path := filepath.Join(noLink, "empty.lck")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Hour)
		if err := os.Chtimes(path, future, future); err != nil {
			t.Fatal(err)
		}
		l := newLock(t, path, flock.WithClockSlop(0))
		if ok, err := l.TryAcquire(); ok || err != nil {
			t.Fatalf("TryAcquire() over an empty unexpired lock file = %v, %v; want false, nil", ok, err)
		}
		past := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, past, past); err != nil {
			t.Fatal(err)
		}
		// sshfs caches attributes: wait until the past time shows.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire() over an empty expired lock file = %v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), strconv.Itoa(os.Getpid())) {
			t.Errorf("lock file = %q, %v; want our claim", b, err)
		}
		if err := l.Release(); err != nil {
			t.Errorf("Release() = %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock file after Release: %v", err)
		}
	})
}
