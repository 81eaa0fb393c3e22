package flock_test

// The Windows process suite: real Windows processes (this test binary,
// re-run) contending for one lock, a holder ended by TerminateProcess
// whose lock is broken once expired, and bad input. .ci/wine runs it under
// Wine; the unix-only suites (signals, sshfs, other users, Python's
// flufl.lock, unshare) are set aside by their build constraints.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// Exit statuses of the Windows child roles.
const (
	winExitOverlap = 3 // two holders at once
	winExitLost    = 4 // the lock was taken from its holder
	winExitError   = 5
)

func init() {
	roles["wincounter"] = roleWinCounter
	roles["winholder"] = roleWinHolder
}

func winChildLock() *flock.Lock {
	lifetime, err := time.ParseDuration(os.Getenv("LIFETIME"))
	if err != nil {
		lifetime = time.Minute
	}
	l, err := flock.New(os.Getenv("LOCK"),
		flock.WithLifetime(lifetime),
		flock.WithClockSlop(0),
		flock.WithRetry(retry.Policy{Initial: time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2, Jitter: 0.5}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(winExitError)
	}
	return l
}

// roleWinCounter increments a counter file ROUNDS times under the lock,
// marking its critical section with a file that a second holder would
// fail to create.
func roleWinCounter() int {
	l := winChildLock()
	defer l.Close()
	dir := os.Getenv("DIR")
	counter, marker := filepath.Join(dir, "counter"), filepath.Join(dir, "marker")
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for range rounds {
		if err := l.Acquire(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "Acquire:", err)
			return winExitError
		}
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "overlap: %v\n", err)
			return winExitOverlap
		}
		f.Close()
		b, err := os.ReadFile(counter)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return winExitError
		}
		n, _ := strconv.Atoi(string(b))
		if err := os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return winExitError
		}
		if err := os.Remove(marker); err != nil {
			fmt.Fprintf(os.Stderr, "overlap: marker: %v\n", err)
			return winExitOverlap
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, "Release:", err)
			return winExitLost
		}
	}
	return 0
}

// roleWinHolder takes the lock, says so on stdout and waits to be killed.
func roleWinHolder() int {
	l := winChildLock()
	if err := l.Acquire(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "Acquire:", err)
		return winExitError
	}
	fmt.Println("held", l.ClaimPath())
	// Not select {}: with no other goroutine, the runtime would end the
	// process as deadlocked before anyone kills it.
	for {
		time.Sleep(time.Hour)
	}
}

// TestWindowsContenders: several Windows processes take turns on one lock;
// no two hold it at once and no increment is lost.
func TestWindowsContenders(t *testing.T) {
	dir := testenv.TempDir(t)
	lock := filepath.Join(dir, "app.lck")
	if err := os.WriteFile(filepath.Join(dir, "counter"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	const procs, rounds = 4, 15
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = testenv.Child(t, "wincounter", "LOCK="+lock, "DIR="+dir, "ROUNDS="+strconv.Itoa(rounds))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("counter %d: %v (exit %d: 3 overlap, 4 lost, 5 error)", i, err, cmd.ProcessState.ExitCode())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != strconv.Itoa(procs*rounds) {
		t.Errorf("counter = %s; want %d", got, procs*rounds)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if e.Name() != "counter" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestWindowsKilledHolder: a holder ended by TerminateProcess leaves its
// lock file; this host then sees it as stale (ProcessAlive through the
// Windows process API), and Acquire breaks it once it has expired.
func TestWindowsKilledHolder(t *testing.T) {
	dir := testenv.TempDir(t)
	lock := filepath.Join(dir, "app.lck")
	cmd := testenv.Child(t, "winholder", "LOCK="+lock, "LIFETIME=2s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "held ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder said %q, %v; want held", line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // TerminateProcess
		t.Fatal(err)
	}
	cmd.Wait()

	l, err := flock.New(lock, flock.WithClockSlop(0), flock.WithLifetime(time.Minute),
		flock.WithRetry(retry.Policy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, err := l.State(); err != nil || st != flock.Stale {
		t.Errorf("State() after the holder was killed = %v, %v; want stale", st, err)
	}
	if d, err := l.Details(); err != nil || d.PID != cmd.Process.Pid {
		t.Errorf("Details() = %+v, %v; want the killed holder's pid %d", d, err, cmd.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire after the killed holder's lock expired = %v", err)
	}
	if st, err := l.State(); err != nil || st != flock.Ours {
		t.Errorf("State() after Acquire = %v, %v; want ours", st, err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
	if _, err := os.Lstat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Release: %v; want it gone", err)
	}
}

// TestWindowsBadInput: what New refuses on Windows, and a lock path that
// is a directory.
func TestWindowsBadInput(t *testing.T) {
	dir := testenv.TempDir(t)
	for _, tc := range []struct {
		name string
		path string
		opts []flock.Option
		want error
	}{
		{"empty path", "", nil, flock.ErrInvalid},
		{"path ends in a separator", dir + `\`, nil, flock.ErrInvalid},
		{"path holds the separator ^", filepath.Join(dir, "a^b.lck"), nil, flock.ErrInvalid},
		{"backslash separator", filepath.Join(dir, "a.lck"), []flock.Option{flock.WithSeparator(`\`)}, flock.ErrInvalid},
		{"separator | on Windows", filepath.Join(dir, "a.lck"), []flock.Option{flock.WithSeparator("|")}, flock.ErrInvalid},
		{"hostname holds a backslash", filepath.Join(dir, "a.lck"), []flock.Option{flock.WithHostname(`h\x`)}, flock.ErrInvalid},
		{"negative lifetime", filepath.Join(dir, "a.lck"), []flock.Option{flock.WithLifetime(-time.Second)}, flock.ErrInvalid},
		{"directory", dir, nil, flock.ErrNotRegular},
		{"missing directory", filepath.Join(dir, "missing", "a.lck"), nil, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := flock.New(tc.path, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Errorf("New(%q) = %v, %v; want %v", tc.path, l, err, tc.want)
			}
		})
	}

	// A directory that appears at the lock path after New is refused by
	// Acquire, and left alone.
	lock := filepath.Join(dir, "late.lck")
	l, err := flock.New(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryAcquire(); ok || !errors.Is(err, flock.ErrNotRegular) {
		t.Errorf("TryAcquire() at a directory = %v, %v; want false, ErrNotRegular", ok, err)
	}
	if fi, err := os.Stat(lock); err != nil || !fi.IsDir() {
		t.Errorf("the directory at the lock path after TryAcquire: %v, %v", fi, err)
	}
}

// TestWindowsLockLifecycle: the claim uses ^ as its separator, Refresh
// moves the expiry, fencing tokens grow, and a second Lock cannot take a
// held lock.
func TestWindowsLockLifecycle(t *testing.T) {
	dir := testenv.TempDir(t)
	lock := filepath.Join(dir, "app.lck")
	l, err := flock.New(lock, flock.WithFencing(), flock.WithLifetime(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire() = %v", err)
	}
	if !strings.HasPrefix(l.ClaimPath(), lock+"^") {
		t.Errorf("ClaimPath() = %q; want %s^...", l.ClaimPath(), lock)
	}
	// On Windows the claim is moved to the lock path (MoveFileEx without
	// replacing), never linked: no claim file is left beside the lock.
	if _, err := os.Lstat(l.ClaimPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the claim file while the lock is held: %v; want it moved to the lock path", err)
	}
	if b, err := os.ReadFile(lock); err != nil || string(b) != l.ClaimPath() {
		t.Errorf("the lock file holds %q, %v; want the claim's name %q", b, err, l.ClaimPath())
	}
	first, ok := l.Token()
	if !ok {
		t.Errorf("Token() after Acquire with fencing = _, false")
	}
	exp, err := l.Expiration()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(time.Hour); err != nil {
		t.Errorf("Refresh(1h) = %v", err)
	}
	if later, err := l.Expiration(); err != nil || !later.After(exp) {
		t.Errorf("Expiration() after Refresh(1h) = %v, %v; want after %v", later, err, exp)
	}
	other, err := flock.New(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ok, err := other.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire() of a held lock = %v, %v; want false, nil", ok, err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire() again = %v", err)
	}
	if second, _ := l.Token(); second <= first {
		t.Errorf("tokens %d then %d; want them to grow", first, second)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}
