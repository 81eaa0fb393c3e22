//go:build unix

package flock

// From the adversarial review of the no-link paths: lost replies to the portable
// publishes (rename without replacing, exclusive create) and to the
// moves and removals around them.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
)

func rvNoRenameNoReplace(_ func(string, string) error, o, n string) error {
	return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
}

func rvRefuseLinks(_ func(string, string) error, o, n string) error {
	return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
}

func rvLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestNoLinkLostReplies: a reply lost after the operation happened,
// answered by the retransmission as the operation's own after-effect
// would be (EEXIST for a create or a rename without replacing whose
// target is now there, ENOENT for a rename or removal whose source is
// gone), on each of the portable ways.
func TestNoLinkLostReplies(t *testing.T) {
	type stage struct {
		name   string
		create bool // exclusive create (no rename without replacing)
		hook   func(f *fsystest.Faulty, lock string, lost *atomic.Bool)
	}
	lostAfter := func(errno syscall.Errno, lost *atomic.Bool, match func(o, n string) bool) func(next func(string, string) error, o, n string) error {
		return func(next func(string, string) error, o, n string) error {
			err := next(o, n)
			if err == nil && match(o, n) && lost.CompareAndSwap(false, true) {
				return &os.LinkError{Op: "rename", Old: o, New: n, Err: errno}
			}
			return err
		}
	}
	stages := []stage{
		{"create of the lock file answers EEXIST", true, func(f *fsystest.Faulty, lock string, lost *atomic.Bool) {
			f.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, at time.Time) (fsys.File, error) {
				file, err := next(p, data, at)
				if err == nil && p == lock && lost.CompareAndSwap(false, true) {
					file.Close()
					return nil, &os.PathError{Op: "create", Path: p, Err: syscall.EEXIST}
				}
				return file, err
			}
		}},
		{"move of the claim answers EEXIST", false, func(f *fsystest.Faulty, lock string, lost *atomic.Bool) {
			f.OnRenameNoReplace = lostAfter(syscall.EEXIST, lost, func(o, n string) bool { return n == lock })
		}},
		{"move of the claim answers ENOENT", false, func(f *fsystest.Faulty, lock string, lost *atomic.Bool) {
			f.OnRenameNoReplace = lostAfter(syscall.ENOENT, lost, func(o, n string) bool { return n == lock })
		}},
		{"release's move aside answers ENOENT (create)", true, func(f *fsystest.Faulty, lock string, lost *atomic.Bool) {
			f.OnRename = lostAfter(syscall.ENOENT, lost, func(o, n string) bool { return o == lock })
		}},
		{"release's move aside answers ENOENT (move)", false, func(f *fsystest.Faulty, lock string, lost *atomic.Bool) {
			f.OnRename = lostAfter(syscall.ENOENT, lost, func(o, n string) bool { return o == lock })
		}},
	}
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			dir := t.TempDir()
			lock := filepath.Join(dir, "app.lck")
			f := &fsystest.Faulty{FS: fsys.OS, OnLink: rvRefuseLinks}
			if st.create {
				f.OnRenameNoReplace = rvNoRenameNoReplace
			}
			var lost atomic.Bool
			st.hook(f, lock, &lost)
			if st.create && f.OnRenameNoReplace == nil {
				f.OnRenameNoReplace = rvNoRenameNoReplace
			}
			l, err := New(lock, withFS(f), WithPortable(), WithClockSlop(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := l.Acquire(ctx); err != nil {
				t.Fatalf("Acquire() = %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Acquire() took %v", d)
			}
			if ok, err := l.IsLocked(); !ok || err != nil {
				t.Errorf("IsLocked() = %v, %v", ok, err)
			}
			if err := l.Release(); err != nil {
				t.Errorf("Release() = %v", err)
			}
			if !lost.Load() {
				t.Fatal("no reply was lost")
			}
			if names := rvLeftovers(t, dir); len(names) != 0 {
				t.Errorf("left behind: %q", names)
			}
		})
	}
}

// TestNoLinkLostCreateEmpty: the NFS shape of a lost create reply:
// the server created the file, but the client never got a handle, so no
// contents were written; the retransmission answers EEXIST. The Lock's
// own empty lock file is judged by its time alone, so it waits one slop
// for it to expire and another to break it (outwaitCache): measured here.
func TestNoLinkLostCreateEmpty(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	var lost atomic.Bool
	f := &fsystest.Faulty{FS: fsys.OS, OnLink: rvRefuseLinks, OnRenameNoReplace: rvNoRenameNoReplace}
	f.OnCreate = func(next func(string, []byte, time.Time) (fsys.File, error), p string, data []byte, at time.Time) (fsys.File, error) {
		if p == lock && lost.CompareAndSwap(false, true) {
			file, err := next(p, nil, at)
			if err != nil {
				return nil, err
			}
			file.Close()
			return nil, &os.PathError{Op: "create", Path: p, Err: syscall.EEXIST}
		}
		return next(p, data, at)
	}
	const slop = 2 * time.Second
	l, err := New(lock, withFS(f), WithPortable(), WithClockSlop(slop))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire() = %v", err)
	}
	t.Logf("Acquire() after a lost create reply took %v", time.Since(start))
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
	if names := rvLeftovers(t, dir); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}
}

// TestReleaseFailingRemovalStillReleases: once Release has moved the
// lock file out of the lock's name, the lock is free, whatever happens to
// the removal of the moved file (on Windows: a read-only lock file, or a
// reader holding it open without sharing delete; here injected). Release
// returned that error, which its doc says leaves the lock held and
// Release to be called again, while another Lock could take the lock and
// a second Release said ErrNotLocked (the no-link review). It returns nil
// and logs what it left.
func TestReleaseFailingRemovalStillReleases(t *testing.T) {
	for _, portable := range []bool{false, true} {
		name := "link"
		if portable {
			name = "portable"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			lock := filepath.Join(dir, "app.lck")
			var releasing, failed atomic.Bool
			f := &fsystest.Faulty{FS: fsys.OS}
			f.OnRemove = func(next func(string) error, p string) error {
				if releasing.Load() && failed.CompareAndSwap(false, true) {
					return &os.PathError{Op: "remove", Path: p, Err: syscall.EACCES}
				}
				return next(p)
			}
			var logged strings.Builder
			logger := slog.New(slog.NewTextHandler(&logged, nil))
			opts := []Option{withFS(f), WithLifetime(time.Minute), WithLogger(logger)}
			if portable {
				opts = append(opts, WithPortable())
			}
			l, err := New(lock, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			releasing.Store(true)
			if err := l.Release(); err != nil {
				t.Errorf("Release(), whose removal of the moved lock file failed = %v; want nil: the lock is free", err)
			}
			if !failed.Load() {
				t.Fatal("no removal was refused")
			}
			if !strings.Contains(logged.String(), "could not be removed") {
				t.Errorf("nothing logged of the file left: %q", logged.String())
			}
			other, err := New(lock)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if ok, err := other.TryAcquire(); !ok || err != nil {
				t.Errorf("another Lock's TryAcquire() after the release = %v, %v", ok, err)
			}
			if err := l.Release(); !errors.Is(err, ErrNotLocked) {
				t.Errorf("second Release() = %v; want ErrNotLocked", err)
			}
		})
	}
}
