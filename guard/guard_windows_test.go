package guard_test

// The Windows suite of guard: .ci/wine runs it under Wine. The rest of
// guard's tests stop and signal processes the POSIX way (SIGSTOP,
// SIGINT) and are set aside by their build constraint.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/guard"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

func init() {
	roles["win-incrementer"] = roleWinIncrementer
}

// roleWinIncrementer adds one to the counter file ROUNDS times, each
// under guard.Do, reading it, yielding, and writing it back: a second
// holder at once would lose an increment.
func roleWinIncrementer() int {
	dir := os.Getenv("DIR")
	counter := filepath.Join(dir, "counter")
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for range rounds {
		err := guard.Do(context.Background(), filepath.Join(dir, "app.lck"), func(context.Context) error {
			b, err := os.ReadFile(counter)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(string(b))
			if err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
			return os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o644)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "Do:", err)
			return 1
		}
	}
	return 0
}

// TestWindowsDoContenders: Windows processes running guard.Do on one lock
// run fn one at a time.
func TestWindowsDoContenders(t *testing.T) {
	dir := testenv.TempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "counter"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	const procs, rounds = 3, 10
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = testenv.Child(t, "win-incrementer", "DIR="+dir, "ROUNDS="+strconv.Itoa(rounds))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("incrementer %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != strconv.Itoa(procs*rounds) {
		t.Errorf("counter = %s; want %d", got, procs*rounds)
	}
	if _, err := os.Lstat(filepath.Join(dir, "app.lck")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after the last Do: %v; want it gone", err)
	}
}

// TestWindowsWithLock: fn's result and error come back, and the lock is
// released after it.
func TestWindowsWithLock(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	fnErr := errors.New("fn failed")
	got, err := guard.WithLock(context.Background(), path, func(ctx context.Context) (string, error) {
		l, err := flock.New(path)
		if err != nil {
			return "", err
		}
		defer l.Close()
		if ok, err := l.TryAcquire(); ok || err != nil {
			return "", fmt.Errorf("TryAcquire() inside fn = %v, %v; want false, nil", ok, err)
		}
		return "partial", fnErr
	})
	if got != "partial" || err != fnErr {
		t.Errorf("WithLock = %q, %v; want partial, fn's error", got, err)
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(ents) != 0 {
		t.Errorf("after WithLock the directory holds %v (%v); want nothing", ents, err)
	}
}

// TestWindowsLockLost: when the lock file is moved aside under fn, as a
// process breaking it does, fn's context is cancelled with a cause that
// matches ErrLockLost, and so is WithLock's error. (Not removed: under
// Wine, a file deleted while another handle has it open keeps its name
// until that handle is closed, and the holder keeps its claim open.)
func TestWindowsLockLost(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	err := guard.Do(context.Background(), path, func(ctx context.Context) error {
		if err := os.Rename(path, path+".broken"); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
			return errors.New("fn's context not cancelled within a minute of the lock file's move")
		}
		if cause := context.Cause(ctx); !errors.Is(cause, flock.ErrLockLost) {
			return fmt.Errorf("context.Cause = %v; want ErrLockLost", cause)
		}
		return nil
	}, flock.WithLifetime(time.Second))
	if !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Do = %v; want ErrLockLost", err)
	}
}
