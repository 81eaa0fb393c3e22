//go:build unix

package flock_test

// Adversarial review of the v1 API: misuse as real users commit it, and
// documented promises checked against behaviour.

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// revNames lists dir, sorted.
func revNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestMisuseConcurrentChaos hammers one Lock from many goroutines with
// every method at once, then closes it: no race, no panic, nothing left
// on disk, no goroutine left.
func TestMisuseConcurrentChaos(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "chaos.lck")
	l, err := flock.New(path, flock.WithLifetime(2*time.Second), flock.WithRetry(retryFast()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	var stopsMu sync.Mutex
	var stops []func() error
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for time.Now().Before(deadline) {
				switch r.IntN(11) {
				case 0:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(20))*time.Millisecond)
					err := l.Acquire(ctx)
					cancel()
					if err != nil && !errors.Is(err, flock.ErrAlreadyLocked) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("Acquire: %v", err)
					}
				case 1:
					_, err := l.TryAcquire()
					if err != nil && !errors.Is(err, flock.ErrAlreadyLocked) && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("TryAcquire: %v", err)
					}
				case 2:
					err := l.Release()
					if err != nil && !errors.Is(err, flock.ErrNotLocked) && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("Release: %v", err)
					}
				case 3:
					err := l.Refresh(time.Duration(r.IntN(3)) * time.Second)
					if err != nil && !errors.Is(err, flock.ErrNotLocked) && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("Refresh: %v", err)
					}
				case 4:
					if _, err := l.IsLocked(); err != nil && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("IsLocked: %v", err)
					}
				case 5:
					if _, err := l.State(); err != nil && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("State: %v", err)
					}
				case 6:
					if _, err := l.Inspect(); err != nil && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("Inspect: %v", err)
					}
				case 7:
					_, stop := l.KeepAlive(context.Background())
					if r.IntN(2) == 0 {
						stop()
					} else {
						stopsMu.Lock()
						stops = append(stops, stop)
						stopsMu.Unlock()
					}
				case 8:
					_ = l.ClaimPath()
					_, _ = l.Token()
					_ = l.Lifetime()
				case 9:
					if _, err := l.Break(false); err != nil && !errors.Is(err, flock.ErrAlreadyLocked) && !errors.Is(err, flock.ErrClosed) {
						t.Errorf("Break: %v", err)
					}
				case 10:
					if r.IntN(50) == 0 {
						if err := l.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Errorf("final Close: %v", err)
	}
	for _, stop := range stops {
		stop()
	}
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left on disk after Close: %q", names)
	}
}

func retryFast() retryPolicy {
	return retryPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}
}

// TestMisuseCloseDuringBlockedAcquire: Close while another goroutine's
// Acquire waits returns ErrClosed there, leaves no claim, no goroutine.
func TestMisuseCloseDuringBlockedAcquire(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lck")
	holder, err := flock.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, err := flock.New(path)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	for range 2 { // one waiting, one queued behind it
		go func() { errc <- w.Acquire(context.Background()) }()
	}
	time.Sleep(300 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, flock.ErrClosed) {
				t.Errorf("Acquire after Close = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Acquire still blocked 5 s after Close")
		}
	}
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left on disk: %q", names)
	}
}

// TestMisuseCloseDuringKeepAlive: Close cancels KeepAlive's context with
// a cause wrapping ErrClosed; stop is callable afterwards.
func TestMisuseCloseDuringKeepAlive(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	l, err := flock.New(filepath.Join(dir, "x.lck"), flock.WithLifetime(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := l.KeepAlive(context.Background())
	time.Sleep(250 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("KeepAlive's context not cancelled by Close")
	}
	if c := context.Cause(kctx); !errors.Is(c, flock.ErrClosed) {
		t.Errorf("cause = %v, want ErrClosed", c)
	}
	t.Logf("stop() after Close = %v", stop())
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left on disk: %q", names)
	}
}

// TestMisuseUseAfterClose: every method returns ErrClosed.
func TestMisuseUseAfterClose(t *testing.T) {
	dir := t.TempDir()
	l, err := flock.New(filepath.Join(dir, "x.lck"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, flock.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
		var pe *fs.PathError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s: %v is not an *fs.PathError", name, err)
		}
	}
	check("Acquire", l.Acquire(context.Background()))
	_, err = l.TryAcquire()
	check("TryAcquire", err)
	check("Release", l.Release())
	check("Refresh", l.Refresh(0))
	_, err = l.IsLocked()
	check("IsLocked", err)
	_, err = l.Inspect()
	check("Inspect", err)
	_, err = l.State()
	check("State", err)
	_, err = l.Details()
	check("Details", err)
	_, err = l.Expiration()
	check("Expiration", err)
	_, err = l.Break(true)
	check("Break", err)
	kctx, stop := l.KeepAlive(context.Background())
	check("KeepAlive cause", context.Cause(kctx))
	check("KeepAlive stop", stop())
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left on disk: %q", names)
	}
}

// TestMisuseZeroLockTryAcquire: the zero Lock "is not usable"; a
// TryAcquire on it must not report a plain "not acquired, no error" as if
// another process held the lock.
func TestMisuseZeroLockTryAcquire(t *testing.T) {
	var l flock.Lock
	var ok bool
	var err error
	panicked := func() (p any) {
		defer func() { p = recover() }()
		ok, err = l.TryAcquire()
		return nil
	}()
	if panicked == nil && err == nil {
		t.Errorf("zero Lock: TryAcquire() = %v, nil: reads as \"held by another\", not as misuse", ok)
	}
}

// TestMisuseZeroLockAcquire: Acquire on the zero Lock with a context
// that never ends must not block forever (the other methods panic with
// "flock: Lock used without New").
func TestMisuseZeroLockAcquire(t *testing.T) {
	var l flock.Lock
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		done <- l.Acquire(context.Background())
	}()
	select {
	case v := <-done:
		t.Logf("zero Lock Acquire: %v", v)
	case <-time.After(2 * time.Second):
		t.Error("zero Lock: Acquire(context.Background()) blocks forever instead of failing or panicking")
	}
}

// TestMisuseCancelledContext: an already-cancelled context with the
// lock held by another returns ctx's error and leaves no claim behind; with
// the lock free it takes it (one attempt is documented).
func TestMisuseCancelledContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lck")
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("shutting down")
	cancel(why)
	l, err := flock.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire with cancelled ctx on a free lock = %v; documented to make one attempt", err)
	}
	w, err := flock.New(path, flock.WithTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Acquire(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, why) {
		t.Errorf("Acquire(cancelled) = %v, want Canceled and the cause", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	for _, d := range []time.Duration{-time.Second, 0, time.Nanosecond, time.Microsecond} {
		dctx, dcancel := context.WithTimeout(context.Background(), d)
		err := w.Acquire(dctx)
		dcancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("deadline %v: Acquire = %v, want DeadlineExceeded", d, err)
		}
		if errors.Is(err, flock.ErrTimeout) {
			t.Errorf("deadline %v: ctx's deadline reported as ErrTimeout: %v", d, err)
		}
	}
	if names := revNames(t, dir); len(names) != 2 || names[1] != filepath.Base(l.ClaimPath()) {
		t.Errorf("left on disk: %q, want only the holder's lock file and claim", names)
	}
}

// TestMisuseWithTimeoutOption: WithTimeout ends the wait with ErrTimeout;
// an earlier ctx deadline wins with ctx's error.
func TestMisuseWithTimeoutOption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lck")
	h, _ := flock.New(path)
	defer h.Close()
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, err := flock.New(path, flock.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Acquire(context.Background())
	if !errors.Is(err, flock.ErrTimeout) {
		t.Errorf("WithTimeout: %v, want ErrTimeout", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Logf("note: ErrTimeout also matches DeadlineExceeded: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = w.Acquire(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, flock.ErrTimeout) {
		t.Errorf("earlier ctx deadline: %v, want DeadlineExceeded only", err)
	}
}

type retryPolicy = retry.Policy

// TestMisuseBadPaths: each bad path fails in New, with the path in the
// message, and nothing is created.
func TestMisuseBadPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	pid := len(strconv.Itoa(os.Getpid()))
	// The longest base name whose claim name fits in 255 bytes.
	fit := 255 - (3 + len(host) + pid + 34)
	cases := []struct {
		path    string
		invalid bool // want ErrInvalid
		ok      bool // New may succeed
	}{
		{"", true, false},
		{dir, false, false},
		{dir + "/", true, false},
		{dir + "/x.lck/", true, false},
		{dir + "/sub/.", false, false},
		{dir + "/sub/..", false, false},
		{dir + "/missing/x.lck", false, false},
		{dir + "/x\x00y", true, false},
		{dir + "/" + strings.Repeat("a", 250), true, false},
		{dir + "/" + strings.Repeat("a", fit+1), true, false},
		{dir + "/" + strings.Repeat("a", fit), false, true},
		{dir + "/" + strings.Repeat("a", 256), true, false},
	}
	for _, c := range cases {
		l, err := flock.New(c.path)
		short := c.path
		if len(short) > 60 {
			short = short[:30] + "..." + short[len(short)-10:]
		}
		if c.ok {
			if err != nil {
				t.Errorf("New(%q) = %v, want success", short, err)
				continue
			}
			if err := l.Acquire(context.Background()); err != nil {
				t.Errorf("%q: Acquire = %v", short, err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("%q: Close = %v", short, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("New(%q) succeeded (lock file %q)", short, l.Path())
			l.Close()
			continue
		}
		if c.invalid && !errors.Is(err, flock.ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", short, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			t.Errorf("New(%q) = %v, not an *fs.PathError", short, err)
		}
		t.Logf("New(%q) = %v", short, err)
	}
	if names := revNames(t, dir); len(names) != 1 {
		t.Errorf("left on disk: %q", names)
	}
}

// TestMisuseRelativeChdir: a relative path is made absolute at New;
// chdir between calls changes nothing.
func TestMisuseRelativeChdir(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	t.Chdir(dir)
	l, err := flock.New("rel.lck")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chdir(other); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "rel.lck")); err != nil {
		t.Errorf("lock file not in the directory of New: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if names := revNames(t, other); len(names) != 0 {
		t.Errorf("files in the later working directory: %q", names)
	}
}

// TestMisuseBadOptions: invalid option values give ErrInvalid from New.
func TestMisuseBadOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lck")
	bad := map[string]flock.Option{
		"lifetime 0":        flock.WithLifetime(0),
		"lifetime -1":       flock.WithLifetime(-1),
		"lifetime huge":     flock.WithLifetime(flock.MaxLifetime + 1),
		"lifetime maxint":   flock.WithLifetime(math.MaxInt64),
		"timeout -1":        flock.WithTimeout(-1),
		"timeout huge":      flock.WithTimeout(math.MaxInt64),
		"slop -1":           flock.WithClockSlop(-1),
		"slop huge":         flock.WithClockSlop(math.MaxInt64),
		"sep empty":         flock.WithSeparator(""),
		"sep slash":         flock.WithSeparator("/"),
		"sep NUL":           flock.WithSeparator("\x00"),
		"host slash":        flock.WithHostname("a/b"),
		"host sep":          flock.WithHostname("a|b"),
		"host NUL":          flock.WithHostname("a\x00b"),
		"host long":         flock.WithHostname(strings.Repeat("h", 300)),
		"retry zero":        flock.WithRetry(retry.Policy{}),
		"retry neg":         flock.WithRetry(retry.Policy{Initial: -1, Max: 1, Multiplier: 1}),
		"retry jitter 1":    flock.WithRetry(retry.Policy{Initial: 1, Max: 1, Multiplier: 1, Jitter: 1}),
		"retry jitter NaN":  flock.WithRetry(retry.Policy{Initial: 1, Max: 1, Multiplier: 1, Jitter: math.NaN()}),
		"retry mult NaN":    flock.WithRetry(retry.Policy{Initial: 1, Max: 1, Multiplier: math.NaN()}),
		"retry max<initial": flock.WithRetry(retry.Policy{Initial: 2, Max: 1, Multiplier: 1}),
		"retry overflow":    flock.WithRetry(retry.Policy{Initial: 1, Max: math.MaxInt64, Multiplier: 2, Jitter: 0.5}),
	}
	for name, o := range bad {
		_, err := flock.New(path, o)
		if !errors.Is(err, flock.ErrInvalid) {
			t.Errorf("%s: New = %v, want ErrInvalid", name, err)
			continue
		}
		if strings.HasPrefix(name, "retry") && !errors.Is(err, retry.ErrInvalid) {
			t.Errorf("%s: New = %v, want retry.ErrInvalid too", name, err)
		}
	}
}

// TestMisuseExtremeButValid: the largest accepted values work end to
// end, with times that file systems and time.Time can hold.
func TestMisuseExtremeButValid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lck")
	l, err := flock.New(path, flock.WithLifetime(flock.MaxLifetime), flock.WithClockSlop(flock.MaxLifetime), flock.WithTimeout(flock.MaxLifetime))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	exp, err := l.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < flock.MaxLifetime-time.Hour || d > flock.MaxLifetime+time.Hour {
		t.Errorf("expiry %v is %v away, want about MaxLifetime", exp, d)
	}
	if err := l.Refresh(flock.MaxLifetime); err != nil {
		t.Errorf("Refresh(MaxLifetime) = %v", err)
	}
	w, err := flock.New(path, flock.WithClockSlop(flock.MaxLifetime), flock.WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := w.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if s.Expired || s.Breakable {
		t.Errorf("a 100-year lock reads as expired/breakable: %+v", s)
	}
	if err := w.Acquire(context.Background()); !errors.Is(err, flock.ErrTimeout) {
		t.Errorf("waiter = %v, want ErrTimeout", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release = %v", err)
	}
}

// TestMisuseKeepAliveStopAfterRelease: stop "returns that cause [the
// loss], or nil if stop or ctx ended it". After a clean Release, what does
// a deferred stop say?
func TestMisuseKeepAliveStopAfterRelease(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	l, err := flock.New(filepath.Join(dir, "x.lck"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := l.KeepAlive(context.Background())
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	<-kctx.Done()
	if c := context.Cause(kctx); !errors.Is(c, flock.ErrNotLocked) {
		t.Errorf("cause after Release = %v, want ErrNotLocked", c)
	}
	err = stop()
	t.Logf("stop() after Release = %v", err)
	if errors.Is(err, flock.ErrLockLost) {
		t.Errorf("stop() after a clean Release reports a loss: %v", err)
	}
	// Twice, sequentially.
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(context.Background()); !errors.Is(err, flock.ErrAlreadyLocked) {
		t.Errorf("second Acquire = %v, want ErrAlreadyLocked", err)
	}
	if ok, err := l.TryAcquire(); ok || !errors.Is(err, flock.ErrAlreadyLocked) {
		t.Errorf("TryAcquire while held = %v, %v, want ErrAlreadyLocked", ok, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); !errors.Is(err, flock.ErrNotLocked) || errors.Is(err, flock.ErrLockLost) {
		t.Errorf("second Release = %v, want ErrNotLocked", err)
	}
	if _, err := l.Details(); !errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("Details without lock file = %v, want ErrNotLocked", err)
	}
	if _, err := l.Expiration(); !errors.Is(err, flock.ErrNotLocked) {
		t.Errorf("Expiration without lock file = %v, want ErrNotLocked", err)
	}
	if st, err := l.State(); err != nil || st != flock.Unlocked {
		t.Errorf("State = %v, %v, want unlocked", st, err)
	}
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left: %q", names)
	}
}

// TestMisuseNetFSCancelLeavesNothing: on two sshfs clients of one
// directory (and a client without hard links), waiters cancelled at
// various points leave nothing behind once every Lock is done: the
// server's directory is empty.
func TestMisuseNetFSCancelLeavesNothing(t *testing.T) {
	a, b, srv := os.Getenv("NFSFLOCK_SSHFS_A"), os.Getenv("NFSFLOCK_SSHFS_B"), os.Getenv("NFSFLOCK_SSHFS_SERVER")
	nolink := os.Getenv("NFSFLOCK_SSHFS_NOLINK")
	if a == "" || b == "" || srv == "" {
		testenv.Missing(t, "needs NFSFLOCK_SSHFS_A, _B and _SERVER: run `source .ci/setup` as root")
	}
	for _, waiterMount := range []string{a, nolink} {
		if waiterMount == "" {
			continue
		}
		sub := "misuse-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(waiterMount)
		if err := os.Mkdir(filepath.Join(srv, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Join(srv, sub))
		holder, err := flock.New(filepath.Join(b, sub, "x.lck"), flock.WithClockSlop(25*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := holder.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, d := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond, 300 * time.Millisecond} {
			w, err := flock.New(filepath.Join(waiterMount, sub, "x.lck"), flock.WithClockSlop(25*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			err = w.Acquire(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: deadline %v: %v", waiterMount, d, err)
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		if err := holder.Release(); err != nil {
			t.Errorf("Release: %v", err)
		}
		holder.Close()
		time.Sleep(2 * time.Second) // FUSE removes hidden files when the last handle goes
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.Contains(target, sub) {
				t.Errorf("descriptor %s still open: %s", fd.Name(), target)
			}
		}
		if names := revNames(t, filepath.Join(srv, sub)); len(names) != 0 {
			t.Errorf("%s: left on the server: %q", waiterMount, names)
		}
	}
}

// TestMisuseNilOption: options built conditionally ("var o flock.Option;
// if fence { o = flock.WithFencing() }") leave a nil Option; New panics
// with a nil-function call instead of ignoring it or returning ErrInvalid.
func TestMisuseNilOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lck")
	var opt flock.Option
	var err error
	p := func() (p any) {
		defer func() { p = recover() }()
		var l *flock.Lock
		l, err = flock.New(path, opt)
		if l != nil {
			l.Close()
		}
		return nil
	}()
	if p != nil {
		t.Errorf("New(path, nil Option) panicked: %v", p)
	} else {
		t.Logf("New(path, nil Option) = %v", err)
	}
}

// openFDs lists this process's descriptors that point into dir.
func openFDs(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var open []string
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && (strings.HasPrefix(target, dir) || strings.HasPrefix(target, "anon_inode:inotify")) {
			open = append(open, fd.Name()+"->"+target)
		}
	}
	return open
}

// TestMisuseIdleLockHoldsNothing: "A Lock that is neither holding the
// lock nor trying to take it keeps no file open and no goroutine running,
// so after a Release ... Close is not needed". Checked after a timed-out
// wait, a release, a lost lock, Inspect and Break, without Close.
func TestMisuseIdleLockHoldsNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lck")
	before := openFDs(t, dir)
	h, err := flock.New(path, flock.WithLifetime(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, err := flock.New(path, flock.WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Acquire(context.Background()); !errors.Is(err, flock.ErrTimeout) {
		t.Fatalf("waiter = %v", err)
	}
	ok, err := w.TryAcquire()
	if ok || err != nil {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	w.Inspect()
	w.Break(false)
	_, stop := h.KeepAlive(context.Background())
	os.Remove(path)
	if err := h.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Release after removal = %v", err)
	}
	stop()
	if err := w.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(); err != nil {
		t.Fatal(err)
	}
	w.Inspect()
	h.Inspect()
	// A waiter's inotify instance is closed by the goroutine that reads
	// it, which ends just after the wait does.
	if err := goleak.Find(ignore); err != nil { // waits for them to end
		t.Fatal(err)
	}
	if after := openFDs(t, dir); len(after) != len(before) {
		t.Errorf("descriptors open on idle Locks: %q (before: %q)", after, before)
	}
	if names := revNames(t, dir); len(names) != 0 {
		t.Errorf("left: %q", names)
	}
}

// TestMisuseDirRemovedDuringWait: the lock's directory is removed while
// a waiter waits: the waiter returns a not-exist error soon (errors that
// waiting cannot mend are returned at once), and leaves no goroutine.
func TestMisuseDirRemovedDuringWait(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o755)
	path := filepath.Join(dir, "x.lck")
	h, _ := flock.New(path)
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, _ := flock.New(path)
	defer w.Close()
	errc := make(chan error, 1)
	go func() { errc <- w.Acquire(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	// Moved away in one step, so the waiter never sees the lock file
	// gone from a directory that still exists.
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Logf("waiter: %v", err)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("waiter = %v, want not-exist", err)
		}
	case <-time.After(5 * time.Second):
		w.Close()
		<-errc
		t.Error("waiter still waiting 5 s after its directory was removed")
	}
	if err := h.Release(); err == nil {
		t.Errorf("holder's Release after its directory vanished = nil")
	} else {
		t.Logf("holder's Release: %v", err)
	}
	h.Close()
}

// TestMisuseDotDotThroughSymlink: New makes a path absolute lexically
// (filepath.Abs cleans "link/.."), but the system resolves "link/.."
// through the symlink: the Lock locks a different file from the one the
// path names to every other program (flufl.lock, open(2), flock(1)).
func TestMisuseDotDotThroughSymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real", "deep")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(base, "link") + "/../x.lck" // the system: base/real/x.lck
	l, err := flock.New(path)
	if err != nil {
		t.Logf("New refused it: %v", err)
		return
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the path the user gave, %q, names no lock file while held (the Lock took %q): %v", path, l.Path(), err)
	}
}
