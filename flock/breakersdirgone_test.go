//go:build unix

package flock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestBreakersDirGoneBeforePublish: the lock's directory is removed (rm
// -rf) between a breaker's making its breakers' claim and publishing it
// at the breakers' path, in each way of publishing. The publish fails
// with ENOENT, which now means "the directory is gone", not "our claim's
// name went": Acquire's contract returns a missing directory at once, so
// TryAcquire must say so, not report the lock as busy (false, nil) under
// "another process is breaking the lock".
func TestBreakersDirGoneBeforePublish(t *testing.T) {
	refuse := func(_ func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
	}
	noRename := func(func(string, string) error, string, string) error { return errors.ErrUnsupported }
	for _, mode := range []string{"link", "move", "create"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(testenv.TempDir(t), "locks")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "app.lck")
			opts := expiredHolder(t, path)
			removed := 0
			rmdir := func(n string) {
				if n == path+".break" && removed == 0 {
					removed++
					if err := os.RemoveAll(dir); err != nil {
						t.Errorf("removing the lock's directory: %v", err)
					}
				}
			}
			f := &fsystest.Faulty{FS: fsys.OS}
			switch mode {
			case "link":
				f.OnLink = func(next func(string, string) error, o, n string) error {
					rmdir(n)
					return next(o, n)
				}
			case "move":
				f.OnLink = refuse
				f.OnRenameNoReplace = func(next func(string, string) error, o, n string) error {
					rmdir(n)
					return next(o, n)
				}
			case "create":
				f.OnLink, f.OnRenameNoReplace = refuse, noRename
				f.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, tm time.Time) (fsys.File, error) {
					rmdir(p)
					return next(p, data, tm)
				}
			}
			waiter := newLock(t, path, append(opts, withFS(f))...)
			ok, err := waiter.TryAcquire()
			if removed != 1 {
				t.Fatalf("the directory was not staged to vanish (%d); TryAcquire = %v, %v", removed, ok, err)
			}
			if ok || !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("TryAcquire whose lock directory vanished under its break = %v, %v; want false and an error matching fs.ErrNotExist", ok, err)
			}
		})
	}
}
