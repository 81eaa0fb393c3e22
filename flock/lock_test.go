//go:build unix

package flock_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

func newLock(t *testing.T, path string, opts ...flock.Option) *flock.Lock {
	t.Helper()
	l, err := flock.New(path, opts...)
	if err != nil {
		t.Fatalf("New(%q) = %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dirNames lists a directory, sorted, without FUSE's hidden names
// (testenv.Names).
func dirNames(t *testing.T, dir string) []string { return testenv.Names(t, dir) }

func TestAcquireRelease(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	// The on-disk format of flufl.lock: the lock and the claim are one
	// file, whose contents are exactly the claim's name.
	claimPath := l.ClaimPath()
	host, _ := os.Hostname()
	wantPrefix := path + "|" + host + "|" + itoa(os.Getpid()) + "|"
	if !strings.HasPrefix(claimPath, wantPrefix) {
		t.Errorf("ClaimPath() = %q; want prefix %q", claimPath, wantPrefix)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != claimPath {
		t.Errorf("lock file holds %q, %v; want %q", got, err, claimPath)
	}
	li, _ := os.Stat(path)
	ci, _ := os.Stat(claimPath)
	if !os.SameFile(li, ci) {
		t.Errorf("lock file and claim are not one file")
	}
	if exp, err := l.Expiration(); err != nil || exp.Before(time.Now().Add(flock.DefaultLifetime-5*time.Second)) {
		t.Errorf("Expiration() = %v, %v; want about now+%v", exp, err, flock.DefaultLifetime)
	}
	if ok, err := l.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() = %v, %v; want true, nil", ok, err)
	}
	if s, err := l.State(); s != flock.Ours || err != nil {
		t.Errorf("State() = %v, %v; want ours", s, err)
	}
	d, err := l.Details()
	if err != nil || d.Hostname != host || d.PID != os.Getpid() || d.LockFile != path {
		t.Errorf("Details() = %+v, %v", d, err)
	}
	if err := l.Acquire(context.Background()); !errors.Is(err, flock.ErrAlreadyLocked) {
		t.Errorf("second Acquire = %v; want ErrAlreadyLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release = %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("after Release, dir holds %q", names)
	}
	if err := l.Release(); !errors.Is(err, flock.ErrNotLocked) || errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Release again = %v; want ErrNotLocked", err)
	}
	if s, err := l.State(); s != flock.Unlocked || err != nil {
		t.Errorf("State() = %v, %v; want unlocked", s, err)
	}
	if _, err := l.Details(); !errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("Details() = %v; want ErrNotLocked", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// deadPID returns the pid of a process that has exited.
func deadPID(t testing.TB) int {
	t.Helper()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	return dead.ProcessState.Pid()
}

// writeAged writes a file whose times lie age in the past (in the future
// if age is negative).
func writeAged(t *testing.T, path, contents string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// sequence returns a source of random numbers that yields vals, then
// counts on from the last.
func sequence(vals ...uint64) func() uint64 {
	i := 0
	return func() uint64 {
		v := vals[min(i, len(vals)-1)] + uint64(max(0, i-len(vals)+1))<<1
		i++
		return v
	}
}

func TestTwoLocksInOneProcessExclude(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	a := newLock(t, path)
	b := newLock(t, path)
	if ok, err := a.TryAcquire(); !ok || err != nil {
		t.Fatalf("a.TryAcquire() = %v, %v", ok, err)
	}
	if ok, err := b.TryAcquire(); ok || err != nil {
		t.Fatalf("b.TryAcquire() = %v, %v; want false, nil", ok, err)
	}
	if s, _ := b.State(); s != flock.Unknown {
		t.Errorf("b.State() = %v; want unknown (a live process of this host, unexpired)", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ctx.Err()) {
		t.Errorf("b.Acquire(short ctx) = %v; want the ctx error", err)
	}
	// b's failed attempts leave nothing behind.
	if names := dirNames(t, filepath.Dir(path)); len(names) != 2 {
		t.Errorf("dir holds %q; want the lock and a's claim", names)
	}
	done := make(chan error)
	go func() { done <- b.Acquire(context.Background()) }()
	mustBlock(t, done)
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("b.Acquire after a.Release = %v", err)
	}
	if err := a.Release(); !errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("a.Release again = %v", err)
	}
}

// mustBlock fails if done delivers within a short while.
func mustBlock(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("returned %v while the lock was held", err)
	case <-time.After(30 * time.Millisecond):
	}
}

func TestTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	a := newLock(t, path)
	b := newLock(t, path, flock.WithTimeout(20*time.Millisecond))
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := b.Acquire(context.Background())
	if !errors.Is(err, flock.ErrTimeout) {
		t.Fatalf("Acquire = %v; want ErrTimeout", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "acquire" || pe.Path != path {
		t.Errorf("Acquire error = %#v; want a *fs.PathError for acquire %s", err, path)
	}
	// A ctx that ends earlier wins over the timeout, and says so.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("shutting down"))
	err = b.Acquire(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, flock.ErrTimeout) || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Acquire(cancelled) = %v; want context.Canceled with its cause", err)
	}
}

func TestBreakExpired(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	a := newLock(t, path, flock.WithLifetime(time.Minute))
	b := newLock(t, path, flock.WithClock(clock), flock.WithoutTimeBase())
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	aClaim := a.ClaimPath()
	if ok, _ := b.TryAcquire(); ok {
		t.Fatal("b took an unexpired lock")
	}
	clock.Advance(time.Minute + flock.DefaultClockSlop - time.Second)
	if ok, _ := b.TryAcquire(); ok {
		t.Fatal("b broke the lock within the clock slop")
	}
	if s, _ := b.State(); s != flock.TheirsExpired {
		t.Errorf("State() = %v; want theirs_expired", s)
	}
	clock.Advance(2 * time.Second)
	if ok, err := b.TryAcquire(); !ok || err != nil {
		t.Fatalf("b.TryAcquire() after expiry = %v, %v; want true", ok, err)
	}
	if _, err := os.Stat(aClaim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the broken holder's claim is still there: %v", err)
	}
	if ok, err := a.IsLocked(); ok || !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("a.IsLocked() = %v, %v; want false, ErrLockLost", ok, err)
	}
	if err := a.Refresh(0); !errors.Is(err, flock.ErrLockLost) || errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("a.Refresh = %v; want ErrLockLost, not ErrNotLocked", err)
	}
	if err := a.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("a.Release = %v; want ErrLockLost", err)
	}
	if ok, err := b.IsLocked(); !ok || err != nil {
		t.Errorf("a's Release disturbed b: IsLocked() = %v, %v", ok, err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("dir holds %q", names)
	}
}

// TestZeroTimeoutBreaks: an already-expired deadline still gets one
// attempt, which breaks an expired lock (flufl.lock's defect 2).
func TestZeroTimeoutBreaks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	clock := testenv.NewClock(time.Now())
	a := newLock(t, path, flock.WithLifetime(time.Second))
	b := newLock(t, path, flock.WithClock(clock), flock.WithoutTimeBase())
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := b.Acquire(ctx); err != nil {
		t.Fatalf("Acquire(expired ctx) on an expired lock = %v; want nil", err)
	}
}

func TestRefresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.lck")
	l := newLock(t, path, flock.WithLifetime(time.Minute))
	if err := l.Refresh(0); !errors.Is(err, flock.ErrNotLocked) || errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Refresh unheld = %v; want ErrNotLocked", err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(time.Hour); err != nil {
		t.Fatalf("Refresh = %v", err)
	}
	exp, _ := l.Expiration()
	if until := time.Until(exp); until < 50*time.Minute {
		t.Errorf("after Refresh(1h) the lock expires in %v", until)
	}
	if l.Lifetime() != time.Hour {
		t.Errorf("Lifetime() = %v; want 1h", l.Lifetime())
	}
	if err := l.Refresh(-time.Second); !errors.Is(err, flock.ErrInvalid) {
		t.Errorf("Refresh(-1s) = %v; want ErrInvalid", err)
	}
	// A lock file replaced under us is lost, and not extended.
	os.Remove(path)
	os.WriteFile(path, []byte("someone else"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	if err := l.Refresh(0); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Refresh of a replaced lock = %v; want ErrLockLost", err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Errorf("Refresh touched another's lock file")
	}
	if err := l.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Release = %v; want ErrLockLost", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "someone else" {
		t.Errorf("Release removed another's lock file")
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l, err := flock.New(path)
	if err != nil {
		t.Fatal(err)
	}
	other := newLock(t, path)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- other.Acquire(context.Background()) }()
	mustBlock(t, done)
	if err := other.Close(); err != nil {
		t.Fatalf("Close of a waiting Lock = %v", err)
	}
	if err := <-done; !errors.Is(err, flock.ErrClosed) {
		t.Errorf("waiting Acquire after Close = %v; want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("after Close, dir holds %q", names)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	for name, err := range map[string]error{
		"Acquire": l.Acquire(context.Background()),
		"Release": l.Release(),
		"Refresh": l.Refresh(0),
		"TryAcquire": func() error {
			_, err := l.TryAcquire()
			return err
		}(),
		"IsLocked": func() error {
			_, err := l.IsLocked()
			return err
		}(),
		"State": func() error {
			_, err := l.State()
			return err
		}(),
		"Details": func() error {
			_, err := l.Details()
			return err
		}(),
		"Expiration": func() error {
			_, err := l.Expiration()
			return err
		}(),
	} {
		if !errors.Is(err, flock.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	symlink := filepath.Join(dir, "symlink")
	os.Symlink(file, symlink)
	ok := filepath.Join(dir, "ok.lck")
	tests := []struct {
		name string
		path string
		opts []flock.Option
		want error
	}{
		{"empty path", "", nil, flock.ErrInvalid},
		{"directory", dir, nil, flock.ErrNotRegular},
		{"trailing slash", ok + "/", nil, flock.ErrInvalid},
		{"missing directory", filepath.Join(dir, "nope", "x.lck"), nil, fs.ErrNotExist},
		{"parent is a file", filepath.Join(file, "x.lck"), nil, syscall.ENOTDIR},
		{"fifo", fifo, nil, flock.ErrNotRegular},
		{"symlink", symlink, nil, flock.ErrNotRegular},
		{"zero lifetime", ok, []flock.Option{flock.WithLifetime(0)}, flock.ErrInvalid},
		{"negative lifetime", ok, []flock.Option{flock.WithLifetime(-time.Second)}, flock.ErrInvalid},
		{"negative timeout", ok, []flock.Option{flock.WithTimeout(-time.Second)}, flock.ErrInvalid},
		{"negative slop", ok, []flock.Option{flock.WithClockSlop(-time.Second)}, flock.ErrInvalid},
		{"empty separator", ok, []flock.Option{flock.WithSeparator("")}, flock.ErrInvalid},
		{"slash separator", ok, []flock.Option{flock.WithSeparator("/")}, flock.ErrInvalid},
		{"separator no reader knows", ok, []flock.Option{flock.WithSeparator("#")}, flock.ErrInvalid},
		{"separator in path", filepath.Join(dir, "a|b.lck"), nil, flock.ErrInvalid},
		{"backslash in the lock's name", filepath.Join(dir, `a\b.lck`), nil, flock.ErrInvalid},
		{"separator in hostname", ok, []flock.Option{flock.WithHostname("a|b")}, flock.ErrInvalid},
		{"slash in hostname", ok, []flock.Option{flock.WithHostname("a/b")}, flock.ErrInvalid},
		{"space around hostname", ok, []flock.Option{flock.WithHostname(" a")}, flock.ErrInvalid},
		{"newline in hostname", ok, []flock.Option{flock.WithHostname("a\nb")}, flock.ErrInvalid},
		{"NUL in hostname", ok, []flock.Option{flock.WithHostname("a\x00b")}, flock.ErrInvalid},
		{"bad retry policy", ok, []flock.Option{flock.WithRetry(retry.Policy{})}, flock.ErrInvalid},
		{"claim name too long", filepath.Join(dir, strings.Repeat("x", 230)), nil, flock.ErrInvalid},
		{"long hostname", ok, []flock.Option{flock.WithHostname(strings.Repeat("h", 240))}, flock.ErrInvalid},
		{"fencing name too long", filepath.Join(dir, strings.Repeat("x", 230)), []flock.Option{flock.WithFencing(), flock.WithHostname("h")}, flock.ErrInvalid},
		{"another lock's breakers' lock", ok + ".break", nil, flock.ErrInvalid},
		{"another lock's breakers' lock, in capitals", ok + ".BREAK", nil, flock.ErrInvalid},
		{"another lock's fencing hint", ok + ".fence", nil, flock.ErrInvalid},
		{"another lock's fencing counter", ok + ".fence.12", nil, flock.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dirNames(t, dir)
			l, err := flock.New(tt.path, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Errorf("New(%q) = %v, %v; want %v", tt.path, l, err, tt.want)
			}
			if tt.want != flock.ErrInvalid && errors.Is(err, flock.ErrInvalid) {
				t.Errorf("New(%q) = %v; want %v, not ErrInvalid", tt.path, err, tt.want)
			}
			var pe *fs.PathError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("New error %v is not a *fs.PathError", err)
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("New left files: %q -> %q", before, after)
			}
		})
	}
}

// TestSideFileNames: a lock path that names another lock path's side
// file is refused, since a breaker of that lock may break a breakers' lock
// that stood unchanged far ahead (TestFarBreakersLockBrokenOnceUnchanged),
// which a live lock file with a long lifetime does; names that merely
// resemble one are accepted.
func TestSideFileNames(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, owner string }{
		{"x.break", "x"}, {"x.Break", "x"}, {"x.lck.fence", "x.lck"}, {"x.FENCE.7", "x"},
		// Claim-shaped names, under either separator: the sweep of x's
		// Locks would remove them as a dead process's claims.
		{"x^h^1^0123", "x"}, {"x.lck|h|42|7", "x.lck"},
		// Names that change length when lowered, or are not UTF-8 (the
		// review of 943ed49: New panicked, or named another lock).
		{"\xff\xff\xff\xff.break", "\xff\xff\xff\xff"}, {"ȺȺȺȺȺȺȺ.break", "ȺȺȺȺȺȺȺ"}, {"\u212a.break", "\u212a"}, {"x.brea\u212a", "x"}, {"ȺȺȺȺȺȺȺ.FENCE.3", "ȺȺȺȺȺȺȺ"},
	} {
		_, err := flock.New(filepath.Join(dir, tt.name))
		if !errors.Is(err, flock.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("of the lock file %q", tt.owner)) {
			t.Errorf("New(%q) = %v; want ErrInvalid naming the lock %q", tt.name, err, tt.owner)
		}
	}
	for _, name := range []string{".break", "x.breaks", "x.break.lck", ".fence", "x.fence.", "x.fence.1a", "x.fenced", "break", "fence.1", "x^h^1", "x^h^p^1", "a^b^1^2^3"} {
		l, err := flock.New(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("New(%q) = %v; want a Lock", name, err)
			continue
		}
		l.Close()
	}
}

// TestNotRegularAtAcquire: a lock path that becomes a symlink, FIFO or
// directory after New is reported and never touched or removed.
func TestNotRegularAtAcquire(t *testing.T) {
	for _, kind := range []string{"symlink", "fifo", "directory", "dangling symlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			target := filepath.Join(dir, "target")
			os.WriteFile(target, []byte("precious"), 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(target, old, old)
			l := newLock(t, path)
			switch kind {
			case "symlink":
				os.Symlink(target, path)
			case "dangling symlink":
				os.Symlink(filepath.Join(dir, "nowhere"), path)
			case "fifo":
				unix.Mkfifo(path, 0o644)
			case "directory":
				os.Mkdir(path, 0o755)
			}
			before := dirNames(t, dir)
			err := l.Acquire(context.Background())
			if !errors.Is(err, flock.ErrNotRegular) {
				t.Fatalf("Acquire = %v; want ErrNotRegular", err)
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("Acquire changed the directory: %q -> %q", before, after)
			}
			if fi, _ := os.Stat(target); !fi.ModTime().Equal(old) {
				t.Errorf("the symlink's target was touched")
			}
			if _, err := l.State(); !errors.Is(err, flock.ErrNotRegular) {
				t.Errorf("State() = %v; want ErrNotRegular", err)
			}
		})
	}
}

func TestPermanentErrorsFailFast(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	l := newLock(t, filepath.Join(dir, "app.lck"))
	if err := l.Acquire(context.Background()); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Acquire in a read-only directory = %v; want a permission error", err)
	}
}

func TestMissingDirectoryAtAcquire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o755)
	l := newLock(t, filepath.Join(dir, "app.lck"))
	os.Remove(dir)
	if err := l.Acquire(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Acquire with its directory gone = %v; want ErrNotExist", err)
	}
}

// TestHostileContents: whatever a lock file names, only a claim of this
// lock in its own directory is removed when it is broken.
func TestHostileContents(t *testing.T) {
	for _, contents := range []string{
		"",
		"garbage",
		"../victim",
		"VICTIM",
		"/etc/passwd|host|1|2",
		"app.lck|host|1|2/../../VICTIM",
		strings.Repeat("x", 1<<20),
	} {
		t.Run(contents[:min(len(contents), 20)], func(t *testing.T) {
			dir := t.TempDir()
			sub := filepath.Join(dir, "sub")
			os.Mkdir(sub, 0o755)
			path := filepath.Join(sub, "app.lck")
			victim := filepath.Join(dir, "victim")
			contents := strings.ReplaceAll(contents, "VICTIM", victim)
			os.WriteFile(victim, nil, 0o644)
			os.WriteFile(path, []byte(contents), 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(path, old, old)
			l := newLock(t, path, flock.WithClockSlop(0))
			if ok, err := l.TryAcquire(); !ok || err != nil {
				t.Fatalf("TryAcquire over an expired garbage lock = %v, %v", ok, err)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("breaking removed a file outside the lock's claims: %v", err)
			}
		})
	}
}

// TestPlantedClaim: a file planted at the claim's name is not written
// through, and the Lock picks another name.
func TestPlantedClaim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The claim's name is random: plant at the name the Lock will try
	// first, as an attacker who guessed it would.
	host, _ := os.Hostname()
	planted := claim.Name(path, "|", host, os.Getpid(), 7, fsys.OS.Namespace())
	l := newLock(t, path, flock.SimWithRandom(sequence(7<<1, 8<<1)))
	if err := os.Symlink(target, planted); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the claim was written through a planted symlink")
	}
	if l.ClaimPath() == planted {
		t.Errorf("the Lock kept the planted name")
	}
}

// TestClaimRemovedWhileWaiting: a waiter whose claim file is removed by
// someone else makes a new one and still gets the lock.
func TestClaimRemovedWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	holder := newLock(t, path)
	waiter := newLock(t, path)
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- waiter.Acquire(context.Background()) }()
	mustBlock(t, done)
	if err := os.Remove(waiter.ClaimPath()); err != nil {
		t.Fatalf("removing the waiter's claim: %v", err)
	}
	mustBlock(t, done)
	holder.Release()
	if err := <-done; err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if ok, err := waiter.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() = %v, %v", ok, err)
	}
}

func TestNotRegularErrorSaysWhat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path)
	os.Mkdir(path, 0o755)
	err := l.Acquire(context.Background())
	var nr *flock.NotRegularError
	if !errors.As(err, &nr) || nr.Kind != "directory" {
		t.Errorf("Acquire = %v; want a *NotRegularError of kind directory", err)
	}
}

func TestBreak(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	clock := testenv.NewClock(time.Now())
	holder := newLock(t, path, flock.WithLifetime(time.Minute))
	breaker := newLock(t, path, flock.WithClock(clock), flock.WithoutTimeBase())
	if ok, err := breaker.Break(false); ok || err != nil {
		t.Errorf("Break(false) with no lock = %v, %v; want false, nil", ok, err)
	}
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Break(true); !errors.Is(err, flock.ErrAlreadyLocked) {
		t.Errorf("Break of our own lock = %v; want ErrAlreadyLocked", err)
	}
	if ok, err := breaker.Break(false); ok || err != nil {
		t.Errorf("Break(false) of a fresh lock = %v, %v; want false, nil", ok, err)
	}
	if ok, _ := holder.IsLocked(); !ok {
		t.Fatal("Break(false) took a fresh lock")
	}
	clock.Advance(time.Minute + flock.DefaultClockSlop + time.Second)
	if ok, err := breaker.Break(false); !ok || err != nil {
		t.Errorf("Break(false) of an expired lock = %v, %v; want true, nil", ok, err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("after Break, dir holds %q", names)
	}
	if ok, err := holder.IsLocked(); ok || !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("holder.IsLocked() after Break = %v, %v; want ErrLockLost", ok, err)
	}
	holder.Release()

	clock.Set(time.Now())
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, err := breaker.Break(true); !ok || err != nil {
		t.Errorf("Break(true) of a fresh lock = %v, %v; want true, nil", ok, err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("after Break(true), dir holds %q", names)
	}
	if err := holder.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("holder.Release() after a forced break = %v; want ErrLockLost", err)
	}
}

// TestReplacedByNonRegular: a held lock whose file is replaced by a
// directory or a symlink is lost, and what replaced it is left in place.
func TestReplacedByNonRegular(t *testing.T) {
	for _, kind := range []string{"directory", "symlink"} {
		for _, op := range []string{"IsLocked", "Refresh", "Release"} {
			t.Run(kind+"/"+op, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.lck")
				l := newLock(t, path)
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatal(err)
				}
				os.Remove(path)
				if kind == "directory" {
					os.Mkdir(path, 0o755)
				} else {
					os.Symlink(l.ClaimPath(), path)
				}
				var err error
				switch op {
				case "IsLocked":
					_, err = l.IsLocked()
				case "Refresh":
					err = l.Refresh(0)
				case "Release":
					err = l.Release()
				}
				if !errors.Is(err, flock.ErrLockLost) || !errors.Is(err, flock.ErrNotRegular) {
					t.Errorf("%s = %v; want ErrLockLost saying what is there", op, err)
				}
				l.Release()
				fi, err := os.Lstat(path)
				if err != nil || (kind == "directory") != fi.IsDir() || (kind == "symlink") != (fi.Mode()&fs.ModeSymlink != 0) {
					t.Errorf("the %s at the lock path was disturbed: %v, %v", kind, fi, err)
				}
				if names := dirNames(t, dir); len(names) != 1 {
					t.Errorf("dir holds %q; want only the %s", names, kind)
				}
			})
		}
	}
}

// TestBreakersLock: a process breaks a lock only while it holds the
// breakers' lock beside it (path.break). One held by a live breaker within
// its short lifetime makes others leave the lock alone for now, and so
// does, at first sight, one whose expiry lies further ahead than a breaker
// writes, up to an hour further (TestFarBreakersLockBrokenOnceUnchanged);
// one that has expired, or lies further still (planted), is broken in
// turn; a dead local breaker's is judged by its expiry unless
// WithDeadOwnerBreak is set; none is left behind.
func TestBreakersLock(t *testing.T) {
	host, _ := os.Hostname()
	deadPID := itoa(deadPID(t))
	tests := []struct {
		name     string
		contents string
		age      time.Duration // how long ago it expired; negative: in the future
		opts     []flock.Option
		breaks   bool
	}{
		{"live breaker", "app.lck|" + host + "|" + itoa(os.Getpid()) + "|1", -2 * time.Second, nil, false},
		{"live breaker elsewhere", "app.lck|elsewhere|1|1", -2 * time.Second, nil, false},
		{"dead local breaker", "app.lck|" + host + "|" + deadPID + "|1", -2 * time.Second, nil, false},
		{"dead local breaker, dead-owner break", "app.lck|" + host + "|" + deadPID + "|1", -2 * time.Second, []flock.Option{flock.WithDeadOwnerBreak()}, true},
		{"far ahead, first sight", "app.lck|elsewhere|1|1", -10 * time.Minute, nil, false},
		{"planted beyond an hour ahead", "app.lck|elsewhere|1|1", -2 * time.Hour, nil, true},
		{"expired breaker elsewhere", "app.lck|elsewhere|1|1", time.Hour, nil, true},
		{"garbage, expired", "garbage", time.Hour, nil, true},
		{"none", "", 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			writeAged(t, path, "expired holder", time.Hour)
			breakers := path + ".break"
			if tt.contents != "" {
				writeAged(t, breakers, tt.contents, tt.age)
			}
			l := newLock(t, path, tt.opts...)
			ok, err := l.TryAcquire()
			if ok != tt.breaks || err != nil {
				t.Fatalf("TryAcquire() = %v, %v; want %v", ok, err, tt.breaks)
			}
			_, err = os.Lstat(breakers)
			if tt.breaks && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the breakers' lock is still there after the break: %v", err)
			}
			if !tt.breaks {
				if b, _ := os.ReadFile(path); string(b) != "expired holder" {
					t.Errorf("the lock was broken while another held the breakers' lock")
				}
				os.Remove(breakers)
				if ok, err := l.TryAcquire(); !ok || err != nil {
					t.Errorf("TryAcquire() once the breaker is done = %v, %v", ok, err)
				}
			}
		})
	}
}

// steppedClock is the system clock and an offset that the test moves
// forward, to stand for time passing.
type steppedClock struct{ d atomic.Int64 }

func (c *steppedClock) Now() time.Time                       { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *steppedClock) step(d time.Duration)                 { c.d.Add(int64(d)) }
func (c *steppedClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// TestFarBreakersLockBrokenOnceUnchanged: a breakers' lock whose expiry
// lies further ahead than a breaker writes (planted, or written by a live
// breaker whose clock runs ahead of the filesystem's) is broken once the
// Lock has seen it unchanged for a breaker's lease and the slop (5 s and
// at least 5 s), not at first sight; one that changes meanwhile starts the
// count again. TestFastBreakersLockIsLive shows why not at once.
func TestFarBreakersLockBrokenOnceUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	breakers := path + ".break"
	writeAged(t, path, "expired holder", time.Hour)
	writeAged(t, breakers, "app.lck|elsewhere|1|1", -10*time.Minute)
	clock := &steppedClock{}
	const unchanged = 10 * time.Second // breakTTL and the slop (5 s at least)
	l := newLock(t, path, flock.WithClock(clock), flock.WithClockSlop(time.Second))
	try := func(want bool, when string) {
		t.Helper()
		if ok, err := l.TryAcquire(); ok != want || err != nil {
			t.Fatalf("TryAcquire() %s = %v, %v; want %v", when, ok, err, want)
		}
	}
	try(false, "at first sight of the far-ahead breakers' lock")
	clock.step(unchanged - time.Second)
	try(false, "a second before it has stood unchanged 10 s")
	// Changed (a live breaker refreshing it): the count starts again.
	writeAged(t, breakers, "app.lck|elsewhere|1|1", -11*time.Minute)
	clock.step(2 * time.Second)
	try(false, "just after it changed")
	clock.step(unchanged - time.Second)
	try(false, "a second before it has stood unchanged 10 s since it changed")
	clock.step(2 * time.Second)
	try(true, "once it has stood unchanged 10 s")
	if _, err := os.Lstat(breakers); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the breakers' lock is still there after the break: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseSaysWhyLost: a Release that finds the lock no longer ours
// says why, as KeepAlive's cause does, not only that it was lost.
func TestReleaseSaysWhyLost(t *testing.T) {
	for _, tt := range []struct {
		name, why string
		do        func(path string) error
	}{
		{"removed", "the lock file was removed", os.Remove},
		{"replaced", `names pid 99 on "elsewhere"`, func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.WriteFile(path, []byte(path+"|elsewhere|99|1"), 0o644)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.lck")
			l := newLock(t, path)
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := tt.do(path); err != nil {
				t.Fatal(err)
			}
			err := l.Release()
			if !errors.Is(err, flock.ErrLockLost) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Release() = %v; want ErrLockLost saying %q", err, tt.why)
			}
		})
	}
}

// TestRefreshUnheldChangesNothing: ErrNotLocked changes nothing, not even
// the lifetime that the next acquisition would write.
func TestRefreshUnheldChangesNothing(t *testing.T) {
	l := newLock(t, filepath.Join(t.TempDir(), "app.lck"), flock.WithLifetime(time.Hour))
	if err := l.Refresh(time.Second); !errors.Is(err, flock.ErrNotLocked) {
		t.Fatalf("Refresh of an idle Lock = %v; want ErrNotLocked", err)
	}
	if got := l.Lifetime(); got != time.Hour {
		t.Errorf("after Refresh(1s) said ErrNotLocked, Lifetime() = %v; want 1h", got)
	}
}
