//go:build linux

package flock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// On a local disk a Lock tells whether the lock file is its own by one
// Lstat (fsys.Direct): the file's device and inode numbers are those of
// the claim it holds open, which no other file can have meanwhile. These
// tests put a forgery at the lock path, a new file with the very contents,
// owner and times of the holder's lock file, where the holder looks
// (IsLocked, Refresh, Release) and where its Release moves the lock file
// aside: the holder must take it for what it is, another's file, and
// leave it in place. With the quick look trusting a name alone (mutant
// quick-look-by-name) each fails.

// forge replaces the file at path with a new file of the same contents
// and times.
func forge(t *testing.T, path string) {
	t.Helper()
	contents, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".forging"
	if err := os.WriteFile(tmp, contents, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// wantForgery checks that the file at path is still the forgery, not
// the holder's claim.
func wantForgery(t *testing.T, path string, l *Lock) {
	t.Helper()
	at, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("the forged lock file is gone: %v", err)
	}
	if cl, err := os.Lstat(l.ClaimPath()); err == nil && os.SameFile(at, cl) {
		t.Fatalf("the lock file is the holder's claim, not the forgery")
	}
}

func TestQuickLookKnowsForgery(t *testing.T) {
	dir := testenv.TempDir(t)
	if !fsys.OS.(fsys.Direct).Direct(dir) {
		t.Skipf("%s is not on a local filesystem known here: the quick look is not used there", dir)
	}
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	for _, c := range []struct {
		name string
		call func(l *Lock) error
	}{
		{"IsLocked", func(l *Lock) error {
			ok, err := l.IsLocked()
			if ok {
				return nil
			}
			return err
		}},
		{"Refresh", func(l *Lock) error { return l.Refresh(0) }},
		{"Release", func(l *Lock) error { return l.Release() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newSafetyLock(t, path, clock)
			mustTake(t, l)
			if !l.direct {
				t.Fatal("the Lock does not use the quick look on a local filesystem")
			}
			forge(t, path)
			if err := c.call(l); !errors.Is(err, ErrLockLost) {
				t.Errorf("%s() after the lock file was forged = %v; want ErrLockLost", c.name, err)
			}
			wantForgery(t, path, l)
			os.Remove(path)
		})
	}
	// The lock file is forged while Release moves it aside: what it moved
	// is not its own, and goes back.
	t.Run("Release moves a forgery aside", func(t *testing.T) {
		faulty := &fsystest.Faulty{FS: fsys.OS}
		l := newSafetyLock(t, path, clock, withFS(faulty))
		mustTake(t, l)
		if !l.direct {
			t.Fatal("the Lock does not use the quick look through the seam")
		}
		faulty.OnRename = func(next func(string, string) error, o, n string) error {
			if o == path {
				forge(t, path)
			}
			return next(o, n)
		}
		if err := l.Release(); !errors.Is(err, ErrLockLost) {
			t.Errorf("Release() with the lock file forged before its move = %v; want ErrLockLost", err)
		}
		wantForgery(t, path, l)
		os.Remove(path)
	})
}

// TestQuickLookAfterMountOverDirectory: a Lock made while its directory
// lay on a local disk, whose directory then shows another filesystem (a
// mount put over it, here a symbolic link retargeted to an sshfs mount,
// which numbers files by path), learns that from its next claim and looks
// in full there. Deciding once, in New, it took its own lock file on sshfs
// for another's, lost every acquisition and left the lock file behind
// (adversarial review of the quick look, finding 1).
func TestQuickLookAfterMountOverDirectory(t *testing.T) {
	remote, _ := testenv.SSHFS(t)
	local := testenv.TempDir(t)
	if !fsys.OS.(fsys.Direct).Direct(local) {
		t.Skipf("%s is not on a local filesystem known here: the quick look is not used there", local)
	}
	link := filepath.Join(testenv.TempDir(t), "locks")
	if err := os.Symlink(local, link); err != nil {
		t.Fatal(err)
	}
	l, err := New(filepath.Join(link, "app.lck"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustTake(t, l)
	if !l.direct {
		t.Fatal("the Lock does not use the quick look on a local filesystem")
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release() on the local disk = %v", err)
	}
	retarget := link + ".new"
	if err := os.Symlink(remote, retarget); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(retarget, link); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire() on sshfs after the directory changed = %v, %v; want true, nil", ok, err)
	}
	if l.direct {
		t.Error("the Lock still looks by Lstat alone on sshfs")
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() on sshfs = %v", err)
	}
	for _, name := range testenv.Names(t, remote) {
		t.Errorf("left behind on sshfs: %s", name)
	}
}
