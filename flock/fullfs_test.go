//go:build linux

package flock_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// smallTmpfs mounts a 64 KiB tmpfs for the test, or skips (fails under
// CI) where mounting is not allowed.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "mounting a tmpfs: %v: %s (it needs root)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullFilesystem: on a filesystem with no room left, Acquire fails at
// once with ENOSPC instead of waiting, and leaves nothing behind. Before it
// is full, the lock works there as anywhere (tmpfs).
func TestFullFilesystem(t *testing.T) {
	dir := smallTmpfs(t)
	l := newLock(t, filepath.Join(dir, "app.lck"))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire on tmpfs = %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release on tmpfs = %v", err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	for {
		if _, err := filler.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	filler.Close()
	before := dirNames(t, dir)
	err = l.Acquire(boundedContext(t))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Acquire on a full filesystem = %v; want ENOSPC", err)
	}
	if after := dirNames(t, dir); !slices.Equal(before, after) {
		t.Errorf("a failed Acquire left files: %q -> %q", before, after)
	}
}

// TestReadOnlyFilesystem: on a read-only filesystem Acquire fails at once
// with EROFS, whether the lock is free or held by an expired holder that it
// would have to break.
func TestReadOnlyFilesystem(t *testing.T) {
	dir := smallTmpfs(t)
	expired := filepath.Join(dir, "expired.lck")
	os.WriteFile(expired, []byte("old holder"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(expired, old, old)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	for _, name := range []string{"free.lck", "expired.lck"} {
		l := newLock(t, filepath.Join(dir, name))
		if err := l.Acquire(boundedContext(t)); !errors.Is(err, syscall.EROFS) {
			t.Errorf("Acquire of %s on a read-only filesystem = %v; want EROFS", name, err)
		}
	}
}
