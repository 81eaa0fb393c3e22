//go:build unix

package flock_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// work stands for what the lock protects.
func work(context.Context) error { return nil }

// update takes the lock, works under it and releases it, saying what each
// error of Release means.
func update(ctx context.Context, path string) error {
	l, err := flock.New(path, flock.WithLifetime(30*time.Second))
	if err != nil {
		return err
	}
	defer l.Close() // releases the lock if a return below leaves it held

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		return err // ctx's error, flock.ErrTimeout, or a filesystem error
	}
	if err := work(ctx); err != nil { // refresh within 30 s, or use KeepAlive
		return err
	}
	if err := l.Release(); err != nil {
		// flock.ErrLockLost: the lock was broken while this process held
		// it (it paused past the lifetime, or the file was removed), so the
		// work may have overlapped another holder's: treat it as failed.
		// Any other error is a filesystem fault; the deferred Close tries
		// again.
		return err
	}
	return nil
}

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	if err := update(context.Background(), filepath.Join(dir, "app.lck")); err != nil {
		log.Fatal(err)
	}
	fmt.Println("done")
	// Output: done
}
