package flock_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestReadOnlyLockFileRelease: a held lock file given the read-only
// attribute (attrib +r, by a backup or sync tool) is moved aside by
// Release, which could not then delete it: Release returned an error that
// says the lock is still held, while another Lock could take it, and the
// moved file stayed for good (the no-link review, under Wine). Release
// clears the attribute and removes it, as os.Remove does.
func TestReadOnlyLockFileRelease(t *testing.T) {
	dir := testenv.TempDir(t)
	path := filepath.Join(dir, "app.lck")
	l, err := flock.New(path, flock.WithLifetime(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() of a read-only lock file = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
		os.Chmod(filepath.Join(dir, e.Name()), 0o644)
	}
}
