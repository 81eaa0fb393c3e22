//go:build unix

package guard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/guard"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

func init() {
	roles["stopped-holder"] = roleStoppedHolder
	roles["doomed-holder"] = roleDoomedHolder
}

// lockPath returns a lock path in a new directory.
func lockPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "app.lck")
}

// checkReleased fails t unless the lock's directory is empty: no lock
// file, no claim.
func checkReleased(t *testing.T, path string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("left behind: %q", names)
	}
}

func TestWithLock(t *testing.T) {
	path := lockPath(t)
	got, err := guard.WithLock(context.Background(), path, func(ctx context.Context) (string, error) {
		l, err := flock.New(path)
		if err != nil {
			return "", err
		}
		defer l.Close()
		if s, err := l.State(); s != flock.Unknown || err != nil {
			return "", fmt.Errorf("State() inside fn = %v, %v; want held by another", s, err)
		}
		return "done", nil
	})
	if got != "done" || err != nil {
		t.Errorf("WithLock = %q, %v; want done, nil", got, err)
	}
	checkReleased(t, path)

	fnErr := errors.New("fn failed")
	got, err = guard.WithLock(context.Background(), path, func(context.Context) (string, error) { return "partial", fnErr })
	if got != "partial" || err != fnErr {
		t.Errorf("WithLock = %q, %v; want partial, fn's error", got, err)
	}
	checkReleased(t, path)
}

// TestWithLockExcludes: goroutines of one process run fn one at a time.
func TestWithLockExcludes(t *testing.T) {
	path := lockPath(t)
	var inside, total atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := guard.Do(context.Background(), path, func(context.Context) error {
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d goroutines inside at once", n)
				}
				runtime.Gosched()
				inside.Add(-1)
				total.Add(1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if total.Load() != 8 {
		t.Errorf("fn ran %d times; want 8", total.Load())
	}
	checkReleased(t, path)
}

func TestPanicReleases(t *testing.T) {
	path := lockPath(t)
	boom := errors.New("boom")
	func() {
		defer func() {
			if r := recover(); r != boom {
				t.Errorf("recovered %v; want the panic of fn", r)
			}
		}()
		guard.Do(context.Background(), path, func(context.Context) error { panic(boom) })
	}()
	checkReleased(t, path)

	// runtime.Goexit, as t.FailNow calls, unwinds the same way.
	done := make(chan struct{})
	go func() {
		defer close(done)
		guard.Do(context.Background(), path, func(context.Context) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-done
	checkReleased(t, path)
}

func TestCancelledContextReleases(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		path := lockPath(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := guard.Do(ctx, path, func(context.Context) error {
			t.Error("fn ran with a cancelled context")
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %v; want context.Canceled", err)
		}
		checkReleased(t, path)
	})
	t.Run("during", func(t *testing.T) {
		path := lockPath(t)
		ctx, cancel := context.WithCancel(context.Background())
		err := guard.Do(ctx, path, func(ctx context.Context) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		})
		if !errors.Is(err, context.Canceled) || errors.Is(err, flock.ErrLockLost) {
			t.Errorf("Do = %v; want context.Canceled, and not ErrLockLost", err)
		}
		checkReleased(t, path)
	})
	t.Run("waiting", func(t *testing.T) {
		path := lockPath(t)
		release := holdInBackground(path)
		ctx, cancel := context.WithCancelCause(context.Background())
		why := errors.New("user gave up")
		waiterDone := make(chan error)
		go func() {
			waiterDone <- guard.Do(ctx, path, func(context.Context) error {
				t.Error("fn ran without the lock")
				return nil
			})
		}()
		cancel(why)
		if err := <-waiterDone; !errors.Is(err, context.Canceled) || !errors.Is(err, why) {
			t.Errorf("Do = %v; want context.Canceled and its cause", err)
		}
		if err := release(); err != nil {
			t.Errorf("holder's Do = %v", err)
		}
		checkReleased(t, path)
	})
}

// A function that winds down after its context is cancelled (a graceful
// shutdown) still holds the lock while it does: it stays refreshed until
// fn returns. Before, the refreshing ended with ctx, and another process
// broke the lock once it expired, while fn still ran, without fn's
// context saying so (helper 54).
func TestCancelledContextKeepsLockUntilReturn(t *testing.T) {
	path := lockPath(t)
	const life = time.Second
	opts := []flock.Option{flock.WithLifetime(life), flock.WithClockSlop(0)}
	other, err := flock.New(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	shutdown := errors.New("shutting down")
	err = guard.Do(ctx, path, func(ctx context.Context) error {
		cancel(shutdown)
		<-ctx.Done()
		if cause := context.Cause(ctx); cause != shutdown {
			t.Errorf("fn's context cause = %v; want ctx's", cause)
		}
		// Wind down for three lifetimes, while another Lock tries.
		for end := time.Now().Add(3 * life); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if took, err := other.TryAcquire(); took {
				other.Release()
				return errors.New("another Lock took the lock while fn wound down")
			} else if err != nil {
				return err
			}
		}
		return nil
	}, opts...)
	if err != nil {
		t.Errorf("Do = %v; want nil", err)
	}
	checkReleased(t, path)
}

// holdInBackground holds the lock at path in a goroutine, through Do,
// until the returned function is called; that returns Do's error.
func holdInBackground(path string) (release func() error) {
	held := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- guard.Do(context.Background(), path, func(context.Context) error {
			close(held)
			<-stop
			return nil
		})
	}()
	<-held
	return func() error {
		close(stop)
		return <-done
	}
}

func TestAcquireFails(t *testing.T) {
	path := lockPath(t)
	release := holdInBackground(path)
	_, err := guard.WithLock(context.Background(), path, func(context.Context) (int, error) {
		t.Error("fn ran without the lock")
		return 0, nil
	}, flock.WithTimeout(time.Millisecond))
	if !errors.Is(err, flock.ErrTimeout) {
		t.Errorf("WithLock = %v; want ErrTimeout", err)
	}
	if err := release(); err != nil {
		t.Errorf("holder's Do = %v", err)
	}

	if err := guard.Do(context.Background(), "", func(context.Context) error { return nil }); !errors.Is(err, flock.ErrInvalid) {
		t.Errorf("Do with an empty path = %v; want ErrInvalid", err)
	}
	if err := guard.Do(context.Background(), path, nil); !errors.Is(err, flock.ErrInvalid) {
		t.Errorf("Do with a nil fn = %v; want ErrInvalid", err)
	}
}

// TestLostLockCancelsFn: the lock file is removed under fn (as a breaker
// or an operator would); fn's context ends with ErrLockLost as its cause,
// and WithLock's error carries both that and fn's own error.
func TestLostLockCancelsFn(t *testing.T) {
	path := lockPath(t)
	var cause error
	_, err := guard.WithLock(context.Background(), path, func(ctx context.Context) (int, error) {
		if err := os.Remove(path); err != nil {
			return 0, err
		}
		<-ctx.Done()
		cause = context.Cause(ctx)
		return 0, ctx.Err()
	}, flock.WithLifetime(300*time.Millisecond))
	if !errors.Is(cause, flock.ErrLockLost) {
		t.Errorf("context.Cause in fn = %v; want ErrLockLost", cause)
	}
	if !errors.Is(err, flock.ErrLockLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("WithLock = %v; want ErrLockLost joined with context.Canceled", err)
	}
	checkReleased(t, path)
}

// TestLostAtRelease: the lock is lost after the last refresh; fn returns
// before anyone notices, and WithLock reports it.
func TestLostAtRelease(t *testing.T) {
	path := lockPath(t)
	err := guard.Do(context.Background(), path, func(ctx context.Context) error {
		return os.Remove(path)
	})
	if !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Do = %v; want ErrLockLost", err)
	}
	checkReleased(t, path)
}

func TestToken(t *testing.T) {
	path := lockPath(t)
	for want := uint64(1); want <= 3; want++ {
		guard.Do(context.Background(), path, func(ctx context.Context) error {
			if got, ok := guard.Token(ctx); got != want || !ok {
				t.Errorf("Token = %d, %v; want %d, true", got, ok, want)
			}
			return nil
		}, flock.WithFencing())
	}
	guard.Do(context.Background(), filepath.Join(filepath.Dir(path), "plain.lck"), func(ctx context.Context) error {
		if got, ok := guard.Token(ctx); ok {
			t.Errorf("Token without fencing = %d, true", got)
		}
		return nil
	})
	if _, ok := guard.Token(context.Background()); ok {
		t.Error("Token of a context not from WithLock = _, true")
	}
}

// TestTokenIsInnermostLocks: inside nested WithLock calls, Token reports
// the fencing of the innermost one alone, so that a store the inner lock
// protects never gets a token from the outer lock's counter.
func TestTokenIsInnermostLocks(t *testing.T) {
	fencing := func(fenced bool) []flock.Option {
		if fenced {
			return []flock.Option{flock.WithFencing()}
		}
		return nil
	}
	tests := []struct {
		name                     string
		outerFenced, innerFenced bool
		wantOuter, wantInner     uint64
		wantOuterOK, wantInnerOK bool
	}{
		{"unfenced in fenced", true, false, 2, 0, true, false},
		{"fenced in unfenced", false, true, 0, 1, false, true},
		{"fenced in fenced", true, true, 2, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			outer := filepath.Join(dir, "outer.lck")
			inner := filepath.Join(dir, "inner.lck")
			// Move the outer lock's counter on, so that its token differs
			// from the inner lock's.
			if err := guard.Do(context.Background(), outer, func(context.Context) error { return nil }, flock.WithFencing()); err != nil {
				t.Fatalf("Do(%s) = %v", outer, err)
			}
			err := guard.Do(context.Background(), outer, func(ctx context.Context) error {
				err := guard.Do(ctx, inner, func(ctx context.Context) error {
					if got, ok := guard.Token(ctx); got != tt.wantInner || ok != tt.wantInnerOK {
						t.Errorf("Token in the inner fn = %d, %v; want %d, %v", got, ok, tt.wantInner, tt.wantInnerOK)
					}
					return nil
				}, fencing(tt.innerFenced)...)
				if got, ok := guard.Token(ctx); got != tt.wantOuter || ok != tt.wantOuterOK {
					t.Errorf("Token in the outer fn = %d, %v; want %d, %v", got, ok, tt.wantOuter, tt.wantOuterOK)
				}
				return err
			}, fencing(tt.outerFenced)...)
			if err != nil {
				t.Errorf("Do = %v", err)
			}
		})
	}
}

// roleStoppedHolder holds the lock with guard.Do until it is lost, and
// reports on stdout what its fn and Do saw.
func roleStoppedHolder() int {
	lifetime, _ := time.ParseDuration(os.Getenv("LIFETIME"))
	err := guard.Do(context.Background(), os.Getenv("LOCK"), func(ctx context.Context) error {
		token, _ := guard.Token(ctx)
		fmt.Printf("held %d\n", token)
		<-ctx.Done()
		cause := context.Cause(ctx)
		fmt.Printf("cause %v %v\n", errors.Is(cause, flock.ErrLockLost), cause)
		return ctx.Err()
	}, flock.WithLifetime(lifetime), flock.WithClockSlop(0), flock.WithFencing())
	fmt.Printf("returned %v %v\n", errors.Is(err, flock.ErrLockLost), errors.Is(err, context.Canceled))
	return 0
}

// TestLostLockAfterStop: a holder stopped with SIGSTOP past its lifetime
// loses the lock to a waiter, which gets a larger fencing token. Resumed,
// the holder's fn learns through its context that the lock is lost, as
// soon as its keep-alive wakes: the cause says the lifetime ran out, by
// the holder's own clocks, before any look at the lock file (which a
// filesystem that hangs after a resume would hold up); the waiter holds
// the lock until the holder has reported.
func TestLostLockAfterStop(t *testing.T) {
	path := lockPath(t)
	cmd := testenv.Child(t, "stopped-holder", "LOCK="+path, "LIFETIME=300ms")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("holder ended early: %v", lines.Err())
		}
		return lines.Text()
	}
	holderToken, err := strconv.ParseUint(strings.TrimPrefix(next(), "held "), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waiter, err := flock.New(path, flock.WithClockSlop(0), flock.WithFencing())
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waiter.Acquire(ctx); err != nil {
		t.Fatalf("waiter's Acquire = %v", err)
	}
	if token, _ := waiter.Token(); token <= holderToken {
		t.Errorf("waiter's token %d; want more than the stopped holder's %d", token, holderToken)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cause := next()
	wantCause := fmt.Sprintf("cause true keepalive %s: flock: lock lost: our lifetime ran out at", path)
	if !strings.HasPrefix(cause, wantCause) {
		t.Errorf("holder's fn saw %q; want ErrLockLost saying %q", cause, wantCause)
	}
	if got := next(); got != "returned true true" {
		t.Errorf("holder's Do: %q; want ErrLockLost and context.Canceled", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("holder: %v", err)
	}
	// The holder's release left the waiter's lock alone.
	if ok, err := waiter.IsLocked(); !ok || err != nil {
		t.Errorf("waiter's IsLocked() = %v, %v; want true", ok, err)
	}
	if err := waiter.Release(); err != nil {
		t.Errorf("waiter's Release() = %v", err)
	}
}

// roleDoomedHolder holds the lock with guard.Do and says so on stdout;
// then its fn panics (HOW=panic), or waits for SIGINT to cancel its
// context (HOW=interrupt).
func roleDoomedHolder() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := guard.Do(ctx, os.Getenv("LOCK"), func(ctx context.Context) error {
		fmt.Println("held")
		if os.Getenv("HOW") == "panic" {
			panic("doomed")
		}
		<-ctx.Done()
		return ctx.Err()
	}, flock.WithLifetime(time.Hour))
	fmt.Fprintln(os.Stderr, "Do returned", err)
	if !errors.Is(err, context.Canceled) {
		return 1
	}
	return 0
}

// TestProcessEndsReleased: a process whose fn panics, and one whose
// context is cancelled by a signal, release the lock before they exit:
// another process takes it at once, though its lifetime is an hour.
func TestProcessEndsReleased(t *testing.T) {
	for _, how := range []string{"panic", "interrupt"} {
		t.Run(how, func(t *testing.T) {
			path := lockPath(t)
			cmd := testenv.Child(t, "doomed-holder", "LOCK="+path, "HOW="+how)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("holder said %q, %v", line, err)
			}
			if how == "interrupt" {
				cmd.Process.Signal(os.Interrupt)
			}
			err = cmd.Wait()
			if how == "panic" && err == nil {
				t.Error("the panicking holder exited with status 0")
			}
			if how == "interrupt" && err != nil {
				t.Errorf("holder: %v", err)
			}
			checkReleased(t, path)
			l, err := flock.New(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if ok, err := l.TryAcquire(); !ok || err != nil {
				t.Errorf("TryAcquire() after the holder ended = %v, %v; want true", ok, err)
			}
		})
	}
}
