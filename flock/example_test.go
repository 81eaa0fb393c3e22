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

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	l, err := flock.New(filepath.Join(dir, "app.lck"), flock.WithLifetime(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		log.Fatal(err)
	}
	// ... work on the shared resource, calling l.Refresh(0) before the
	// lifetime runs out ...
	state, _ := l.State()
	fmt.Println(state)
	if err := l.Release(); err != nil {
		log.Fatal(err)
	}
	state, _ = l.State()
	fmt.Println(state)
	// Output:
	// ours
	// unlocked
}

func ExampleLock_TryAcquire() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.lck")

	holder, _ := flock.New(path)
	defer holder.Close()
	holder.Acquire(context.Background())

	other, _ := flock.New(path)
	defer other.Close()
	ok, err := other.TryAcquire()
	fmt.Println(ok, err)
	d, _ := other.Details()
	fmt.Println(d.PID == os.Getpid())
	// Output:
	// false <nil>
	// true
}
