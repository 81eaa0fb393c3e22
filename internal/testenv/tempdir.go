package testenv

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TempDir returns a new empty directory for t, removed when t ends: on
// Windows one of its own, elsewhere t.TempDir(). Wine 8 answers the
// POSIX-semantics deletes that t.TempDir's clean-up (os.RemoveAll) makes
// with "Invalid function", so there the directory is emptied with plain
// deletes, file by file, retried for a few seconds while a child process
// that had a file open ends.
func TempDir(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "windows" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", dirName(t))
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := removeTree(dir)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("TempDir: removing %s: %v", dir, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// removeTree removes dir and what is in it, deepest first, with one
// os.Remove each.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, p := range slices.Backward(paths) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
