//go:build unix

package flock_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/retry"
)

// TestLostIsNotNotLocked: a lost lock must never pass for the harmless
// "not locked", which callers routinely ignore.
func TestLostIsNotNotLocked(t *testing.T) {
	if errors.Is(flock.ErrLockLost, flock.ErrNotLocked) || errors.Is(flock.ErrNotLocked, flock.ErrLockLost) {
		t.Errorf("errors.Is(ErrLockLost, ErrNotLocked) = %v, errors.Is(ErrNotLocked, ErrLockLost) = %v; want false, false",
			errors.Is(flock.ErrLockLost, flock.ErrNotLocked), errors.Is(flock.ErrNotLocked, flock.ErrLockLost))
	}
	sentinels := []error{
		flock.ErrAlreadyLocked, flock.ErrNotLocked, flock.ErrTimeout, flock.ErrLockLost, flock.ErrClosed,
		flock.ErrNotRegular, flock.ErrLinkUnsupported, flock.ErrInvalid, flock.ErrBreaking, flock.ErrFencing,
	}
	for i, a := range sentinels {
		if !strings.HasPrefix(a.Error(), "flock: ") {
			t.Errorf("sentinel %q does not start with \"flock: \"", a)
		}
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = true; want every sentinel distinct", a, b)
			}
		}
	}
}

// errorCase is a call that fails, and what its error must match.
type errorCase struct {
	name  string
	call  func(t *testing.T, path string) error
	op    string  // the *fs.PathError's Op
	is    []error // what the error must match
	isNot []error // what it must not
	check func(t *testing.T, err error)
}

// TestErrorsUnwrapAsDocumented provokes each documented error and checks
// that it is an *fs.PathError naming the call and the lock path once, that
// it matches what its doc says, and nothing it must not.
func TestErrorsUnwrapAsDocumented(t *testing.T) {
	held := func(t *testing.T, path string, opts ...flock.Option) *flock.Lock {
		t.Helper()
		l := newLock(t, path, opts...)
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatalf("Acquire() = %v", err)
		}
		return l
	}
	lost := func(t *testing.T, path string) *flock.Lock {
		t.Helper()
		l := held(t, path)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		return l
	}
	closed := func(t *testing.T, path string) *flock.Lock {
		t.Helper()
		l := newLock(t, path)
		if err := l.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		return l
	}
	// An expired lock of another host.
	expired := func(t *testing.T, path string) {
		t.Helper()
		writeAged(t, path, path+"|elsewhere|42|1", time.Hour)
	}
	notRegular := func(kind string) func(t *testing.T, err error) {
		return func(t *testing.T, err error) {
			var nr *flock.NotRegularError
			if !errors.As(err, &nr) || nr.Kind != kind {
				t.Errorf("errors.As(%v, *NotRegularError) = %v; want Kind %q", err, nr, kind)
			}
		}
	}
	keepAliveCause := func(t *testing.T, l *flock.Lock) error {
		t.Helper()
		ctx, stop := l.KeepAlive(context.Background())
		defer stop()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("KeepAlive's context still not done after 10s")
		}
		return context.Cause(ctx)
	}
	lostOrNot := []error{flock.ErrNotLocked}
	notLost := []error{flock.ErrLockLost}

	tests := []errorCase{
		{name: "Acquire while held", op: "acquire", is: []error{flock.ErrAlreadyLocked},
			call: func(t *testing.T, path string) error { return held(t, path).Acquire(context.Background()) }},
		{name: "TryAcquire while held", op: "acquire", is: []error{flock.ErrAlreadyLocked},
			call: func(t *testing.T, path string) error { _, err := held(t, path).TryAcquire(); return err }},
		{name: "Break of our own lock", op: "break", is: []error{flock.ErrAlreadyLocked},
			call: func(t *testing.T, path string) error { _, err := held(t, path).Break(true); return err }},

		{name: "Release never acquired", op: "release", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error { return newLock(t, path).Release() }},
		{name: "Release twice", op: "release", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error {
				l := held(t, path)
				if err := l.Release(); err != nil {
					t.Fatalf("Release() = %v", err)
				}
				return l.Release()
			}},
		{name: "Refresh never acquired", op: "refresh", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error { return newLock(t, path).Refresh(0) }},
		{name: "Details without a lock file", op: "details", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error { _, err := newLock(t, path).Details(); return err }},
		{name: "Details of contents that name no claim", op: "details", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error {
				writeAged(t, path, "not a claim", 0)
				_, err := newLock(t, path).Details()
				return err
			}},
		{name: "Expiration without a lock file", op: "expiration", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error { _, err := newLock(t, path).Expiration(); return err }},
		{name: "KeepAlive after Release", op: "keepalive", is: []error{flock.ErrNotLocked}, isNot: notLost,
			call: func(t *testing.T, path string) error {
				l := held(t, path)
				if err := l.Release(); err != nil {
					t.Fatalf("Release() = %v", err)
				}
				return keepAliveCause(t, l)
			}},

		{name: "Acquire past WithTimeout", op: "acquire", is: []error{flock.ErrTimeout},
			call: func(t *testing.T, path string) error {
				held(t, path)
				return newLock(t, path, flock.WithTimeout(10*time.Millisecond)).Acquire(context.Background())
			}},
		{name: "Acquire with ctx cancelled", op: "acquire", is: []error{context.Canceled, errStop}, isNot: []error{flock.ErrTimeout},
			call: func(t *testing.T, path string) error {
				held(t, path)
				ctx, cancel := context.WithCancelCause(context.Background())
				cancel(errStop)
				return newLock(t, path).Acquire(ctx)
			}},
		{name: "Acquire past ctx's deadline", op: "acquire", is: []error{context.DeadlineExceeded},
			call: func(t *testing.T, path string) error {
				held(t, path)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				return newLock(t, path).Acquire(ctx)
			}},

		{name: "Release of a removed lock", op: "release", is: []error{flock.ErrLockLost}, isNot: lostOrNot,
			call: func(t *testing.T, path string) error { return lost(t, path).Release() }},
		{name: "Refresh of a removed lock", op: "refresh", is: []error{flock.ErrLockLost}, isNot: lostOrNot,
			call: func(t *testing.T, path string) error { return lost(t, path).Refresh(0) }},
		{name: "IsLocked of a removed lock", op: "islocked", is: []error{flock.ErrLockLost}, isNot: lostOrNot,
			call: func(t *testing.T, path string) error { _, err := lost(t, path).IsLocked(); return err }},
		{name: "Release after IsLocked found it lost", op: "release", is: []error{flock.ErrLockLost}, isNot: lostOrNot,
			call: func(t *testing.T, path string) error {
				l := lost(t, path)
				l.IsLocked()
				return l.Release()
			}},
		{name: "KeepAlive of a removed lock", op: "keepalive", is: []error{flock.ErrLockLost}, isNot: lostOrNot,
			call: func(t *testing.T, path string) error {
				l := held(t, path, flock.WithLifetime(300*time.Millisecond))
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				return keepAliveCause(t, l)
			}},
		{name: "Release of a lock replaced by a directory", op: "release", is: []error{flock.ErrLockLost, flock.ErrNotRegular}, isNot: lostOrNot,
			check: notRegular("directory"),
			call: func(t *testing.T, path string) error {
				l := lost(t, path)
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				return l.Release()
			}},

		{name: "Acquire after Close", op: "acquire", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { return closed(t, path).Acquire(context.Background()) }},
		{name: "TryAcquire after Close", op: "acquire", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).TryAcquire(); return err }},
		{name: "Release after Close", op: "release", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { return closed(t, path).Release() }},
		{name: "Refresh after Close", op: "refresh", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { return closed(t, path).Refresh(0) }},
		{name: "IsLocked after Close", op: "islocked", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).IsLocked(); return err }},
		{name: "Break after Close", op: "break", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).Break(true); return err }},
		{name: "Inspect after Close", op: "inspect", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).Inspect(); return err }},
		{name: "State after Close", op: "state", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).State(); return err }},
		{name: "Details after Close", op: "details", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).Details(); return err }},
		{name: "Expiration after Close", op: "expiration", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { _, err := closed(t, path).Expiration(); return err }},
		{name: "KeepAlive after Close", op: "keepalive", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error { return keepAliveCause(t, closed(t, path)) }},
		{name: "Acquire waiting when Close is called", op: "acquire", is: []error{flock.ErrClosed},
			call: func(t *testing.T, path string) error {
				held(t, path)
				l := newLock(t, path)
				done := make(chan error, 1)
				go func() { done <- l.Acquire(context.Background()) }()
				mustBlock(t, done)
				l.Close()
				return <-done
			}},

		{name: "New at a directory", op: "new", is: []error{flock.ErrNotRegular}, isNot: []error{flock.ErrInvalid},
			check: notRegular("directory"),
			call: func(t *testing.T, path string) error {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				_, err := flock.New(path)
				return err
			}},
		{name: "Acquire at a FIFO", op: "acquire", is: []error{flock.ErrNotRegular}, isNot: []error{flock.ErrInvalid},
			check: notRegular("FIFO"),
			call: func(t *testing.T, path string) error {
				l := newLock(t, path)
				if err := unix.Mkfifo(path, 0o644); err != nil {
					t.Fatal(err)
				}
				return l.Acquire(context.Background())
			}},
		{name: "Inspect at a symlink", op: "inspect", is: []error{flock.ErrNotRegular},
			check: notRegular("symlink"),
			call: func(t *testing.T, path string) error {
				l := newLock(t, path)
				if err := os.Symlink("elsewhere", path); err != nil {
					t.Fatal(err)
				}
				_, err := l.Inspect()
				return err
			}},

		{name: "Acquire with fencing without hard links or no-replace renames", op: "acquire", is: []error{flock.ErrLinkUnsupported},
			call: func(t *testing.T, path string) error {
				noLinks := &fsystest.Faulty{FS: fsys.OS,
					OnLink: func(_ func(string, string) error, o, n string) error {
						return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EPERM}
					},
					OnRenameNoReplace: func(_ func(string, string) error, o, n string) error {
						return &os.LinkError{Op: "renameat2", Old: o, New: n, Err: errors.ErrUnsupported}
					}}
				return newLock(t, path, flock.SimWithFS(noLinks), flock.WithFencing()).Acquire(context.Background())
			}},

		{name: "New with a bad option", op: "new", is: []error{flock.ErrInvalid},
			call: func(t *testing.T, path string) error { _, err := flock.New(path, flock.WithLifetime(-1)); return err }},
		{name: "New with a bad retry policy", op: "new", is: []error{flock.ErrInvalid, retry.ErrInvalid},
			call: func(t *testing.T, path string) error {
				_, err := flock.New(path, flock.WithRetry(retry.Policy{}))
				return err
			}},
		{name: "Refresh with a negative lifetime", op: "refresh", is: []error{flock.ErrInvalid},
			call: func(t *testing.T, path string) error { return held(t, path).Refresh(-time.Second) }},

		{name: "Break while another breaks", op: "break", is: []error{flock.ErrBreaking},
			call: func(t *testing.T, path string) error {
				expired(t, path)
				writeAged(t, path+".break", path+"|elsewhere|43|1", -3*time.Second)
				_, err := newLock(t, path).Break(false)
				return err
			},
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), `pid 43 on host "elsewhere"`) || strings.Count(err.Error(), "breaking") != 1 {
					t.Errorf("error %q; want it to say once who is breaking the lock", err)
				}
			}},

		{name: "fencing Acquire after the counter was deleted", op: "acquire", is: []error{flock.ErrFencing},
			call: func(t *testing.T, path string) error {
				l := held(t, path, flock.WithFencing())
				if err := l.Release(); err != nil {
					t.Fatalf("Release() = %v", err)
				}
				counters, err := filepath.Glob(path + ".fence.*")
				if err != nil || len(counters) == 0 {
					t.Fatalf("no fencing counter beside the lock file: %q, %v", counters, err)
				}
				for _, c := range counters {
					if err := os.Remove(c); err != nil {
						t.Fatal(err)
					}
				}
				return l.Acquire(context.Background())
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.lck")
			err := tt.call(t, path)
			t.Logf("error: %v", err)
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Op != tt.op || pe.Path != path {
				t.Fatalf("error %v: errors.As(*fs.PathError) = %+v; want Op %q and Path %q", err, pe, tt.op, path)
			}
			if n := strings.Count(err.Error(), path+":"); n != 1 {
				t.Errorf("error %q names the lock path %d times; want once", err, n)
			}
			for _, want := range tt.is {
				if !errors.Is(err, want) {
					t.Errorf("errors.Is(%v, %v) = false; want true", err, want)
				}
			}
			for _, not := range tt.isNot {
				if errors.Is(err, not) {
					t.Errorf("errors.Is(%v, %v) = true; want false", err, not)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

var errStop = errors.New("stopped by the test")

// TestErrorNamesLockPathOnce: an error from a filesystem call on the lock
// path itself, which names the path too, reads with the path once and
// still unwraps to that call's error.
func TestErrorNamesLockPathOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err := l.Acquire(context.Background())
	want := "acquire " + path + ": open: not a regular file (directory)"
	if err == nil || err.Error() != want {
		t.Errorf("Acquire() = %v; want %q", err, want)
	}
	var inner *fs.PathError
	if pe, ok := err.(*fs.PathError); !ok || !errors.As(pe.Err, &inner) || inner.Op != "open" || inner.Path != path {
		t.Errorf("Acquire() = %#v; want an *fs.PathError wrapping open's", err)
	}
}
