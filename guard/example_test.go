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

// Workers share one resource, a counter in a file, which they update by
// reading and rewriting it: safe only while one of them at a time does,
// whether they are goroutines, as here, or processes on several hosts.
func ExampleWithLock() {
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
