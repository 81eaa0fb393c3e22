//go:build unix

package guard_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/guard"
)

// WithLock returns what the function returns, computed under the lock.
func ExampleWithLock() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lockPath := filepath.Join(dir, "config.lck")
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(config, []byte("v1"), 0o644); err != nil {
		log.Fatal(err)
	}

	// Read the file while no other process rewrites it.
	b, err := guard.WithLock(context.Background(), lockPath, func(ctx context.Context) ([]byte, error) {
		return os.ReadFile(config)
	}, flock.WithTimeout(time.Minute))
	if err != nil {
		log.Fatal(err) // flock.ErrTimeout, a filesystem error, or fn's
	}
	fmt.Println(string(b))
	// Output: v1
}

// Workers in an errgroup share one resource, a counter in a file, which
// they update by reading and rewriting it: safe only while one of them at
// a time does, whether they are goroutines, as here, or processes on
// several hosts. Each call of WithLock uses a Lock of its own, so the
// goroutines exclude each other.
func ExampleWithLock_errgroup() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lockPath := filepath.Join(dir, "counter.lck")
	counter := filepath.Join(dir, "counter")

	g, ctx := errgroup.WithContext(context.Background())
	for range 4 {
		g.Go(func() error {
			_, err := guard.WithLock(ctx, lockPath, func(ctx context.Context) (int, error) {
				b, err := os.ReadFile(counter)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return 0, err
				}
				n, _ := strconv.Atoi(string(b))
				n++
				return n, os.WriteFile(counter, []byte(strconv.Itoa(n)), 0o644)
			})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		log.Fatal(err)
	}
	b, _ := os.ReadFile(counter)
	fmt.Println("counter:", string(b))
	// Output: counter: 4
}

// A long job works in steps and stops as soon as its lock is lost: when
// another process broke it after this one paused past its lifetime, or,
// here, when the lock file is removed under it.
func ExampleDo() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lockPath := filepath.Join(dir, "job.lck")

	steps := 0
	err = guard.Do(context.Background(), lockPath, func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err() // context.Cause(ctx) says why
			case <-time.After(10 * time.Millisecond): // one step of work
				steps++
				if steps == 3 {
					os.Remove(lockPath)
				}
			}
		}
	}, flock.WithLifetime(300*time.Millisecond)) // refreshed, and checked, every 100 ms
	fmt.Println("lock lost:", errors.Is(err, flock.ErrLockLost))
	fmt.Println("job cancelled:", errors.Is(err, context.Canceled))
	// Output:
	// lock lost: true
	// job cancelled: true
}

// A job that its caller may cancel checks its context between steps and
// stops when it is done; WithLock releases the lock, so that another
// process can take it at once.
func ExampleDo_cancel() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lockPath := filepath.Join(dir, "job.lck")

	shutdown := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- guard.Do(ctx, lockPath, func(ctx context.Context) error {
			close(started)
			for {
				select {
				case <-ctx.Done():
					// context.Cause says why: the caller's reason, or the
					// lock lost.
					return fmt.Errorf("job stopped: %w", context.Cause(ctx))
				default:
					time.Sleep(time.Millisecond) // one step of work
				}
			}
		})
	}()
	<-started
	cancel(shutdown)
	err = <-done
	fmt.Println(err)
	fmt.Println("shut down:", errors.Is(err, shutdown), "lock lost:", errors.Is(err, flock.ErrLockLost))

	l, err := flock.New(lockPath)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	ok, err := l.TryAcquire()
	fmt.Println("lock free again:", ok, err)
	// Output:
	// job stopped: shutting down
	// shut down: true lock lost: false
	// lock free again: true <nil>
}

// Inside the function, Token gives the fencing token to send with every
// write to the store the lock protects, which refuses tokens smaller than
// the largest it has seen.
func ExampleToken() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lockPath := filepath.Join(dir, "store.lck")

	for range 2 {
		err := guard.Do(context.Background(), lockPath, func(ctx context.Context) error {
			token, _ := guard.Token(ctx)
			fmt.Println("writing with token", token)
			return nil
		}, flock.WithFencing())
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// writing with token 1
	// writing with token 2
}
