//go:build unix

package flock_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/nfsflock/nfsflock/flock"
)

// Code that cannot be shaped as a callback for guard.WithLock keeps its
// lock alive itself: work under the keep-alive's context, and stop it
// before releasing. A fencing token goes with every write to the store
// that the lock protects.
func ExampleLock_KeepAlive() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := flock.New(filepath.Join(dir, "app.lck"), flock.WithFencing())
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		log.Fatal(err)
	}
	ctx, stop := l.KeepAlive(context.Background())
	token, _ := l.Token()

	// The work: it should check ctx between steps; context.Cause(ctx)
	// says why if the lock is lost.
	if ctx.Err() == nil {
		fmt.Println("writing with token", token)
	}

	if err := stop(); err != nil {
		log.Fatal(err) // the lock was lost while we worked
	}
	if err := l.Release(); err != nil {
		log.Fatal(err)
	}
	// Output: writing with token 1
}
