//go:build linux

package flock_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// TestRefreshLongerOnFullFilesystem: Refresh with a longer lifetime
// first creates a claim-shaped file of its own to try the expiry on
// (fitsTimes, protocol.go). On a filesystem with no room left, that create
// fails with ENOSPC, and Refresh returns it without refreshing at all,
// although setting the held lock file's times needs no room: Refresh(0)
// still works there, and Refresh(2*lifetime) worked before 4fccc74. A
// holder that extends its lease on a full disk (a job writing its output)
// is refused, and its lock runs out at the old expiry.
func TestRefreshLongerOnFullFilesystem(t *testing.T) {
	dir := smallTmpfs(t)
	const life = 2 * time.Second
	l := newLock(t, filepath.Join(dir, "app.lck"), flock.WithLifetime(life))
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire() = %v, %v", ok, err)
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
	if err := l.Refresh(0); err != nil {
		t.Fatalf("Refresh(0) on the full filesystem = %v", err)
	}
	before, _ := l.Expiration()
	names := dirNames(t, dir)
	err = l.Refresh(10 * life)
	if left := dirNames(t, dir); len(left) != len(names) {
		t.Errorf("the failed Refresh left files: %q -> %q", names, left)
	}
	after, _ := l.Expiration()
	if err != nil {
		t.Errorf("Refresh(%v) on the full filesystem = %v (Refresh(0) works there): the expiry stays %v (now %v), not extended at all",
			10*life, err, before.Format("15:04:05.000"), after.Format("15:04:05.000"))
	}
}
