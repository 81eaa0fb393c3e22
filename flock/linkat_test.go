//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package flock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

// This file holds the tests that need linkat(2), which Solaris lacks.

// TestPlantedSymlinkNotPutBackByLink: as in
// TestPlantedSymlinkPutBackReplacesNothing, a symlink planted at the lock
// path is moved aside by a breaker, and the path stays free; but here
// names cannot be renamed without replacing, and link(2) follows a symlink
// (the BSDs; macOS on NFS and SMB; sftp on their servers), so a put-back
// by link and unlink would make the lock path a hard link to the symlink's
// target (the review of 28e9158). The symlink is left where it was moved.
func TestPlantedSymlinkNotPutBackByLink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	os.WriteFile(path, []byte("old holder"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("someone else's data"), 0o600)
	f := &fsystest.Faulty{FS: fsys.OS}
	f.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
	}
	f.OnLink = func(next func(string, string) error, o, n string) error {
		if err := unix.Linkat(unix.AT_FDCWD, o, unix.AT_FDCWD, n, unix.AT_SYMLINK_FOLLOW); err != nil {
			return &os.LinkError{Op: "link", Old: o, New: n, Err: err}
		}
		return nil
	}
	var aside string
	f.OnRename = func(next func(string, string) error, o, n string) error {
		if o == path && aside == "" {
			aside = n
			os.Remove(path)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}
		return next(o, n)
	}
	breaker, err := New(path, withFS(f), WithClockSlop(0))
	if err != nil {
		t.Fatal(err)
	}
	defer breaker.Close()
	ok, err := breaker.TryAcquire()
	t.Logf("breaker.TryAcquire() = %v, %v", ok, err)
	if aside == "" {
		t.Fatal("not staged: the breaker never moved the lock file aside")
	}
	if fi, err := os.Lstat(path); err == nil {
		t.Errorf("the lock path holds a %v after the put-back; want nothing there", fi.Mode().Type())
	}
	if fi, err := os.Lstat(aside); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("what was moved aside: %v, %v; want the symlink left there", fi, err)
	}
	if fi, _ := os.Stat(target); fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Errorf("the symlink's target has %d links; want 1", fi.Sys().(*syscall.Stat_t).Nlink)
	}
}
