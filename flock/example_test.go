//go:build unix

package flock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// TryAcquire does not wait: it reports whether it took the lock.
func ExampleLock_TryAcquire() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.lck")

	holder, err := flock.New(path)
	if err != nil {
		log.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Acquire(context.Background()); err != nil {
		log.Fatal(err)
	}

	other, err := flock.New(path)
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	ok, err := other.TryAcquire()
	fmt.Println("taken while held:", ok, err)

	if err := holder.Release(); err != nil {
		log.Fatal(err)
	}
	ok, err = other.TryAcquire()
	fmt.Println("taken once released:", ok, err)
	// Output:
	// taken while held: false <nil>
	// taken once released: true <nil>
}

// Release tells a lost lock, which the caller must act on, from one that
// was not held, which is harmless.
func ExampleLock_Release() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.lck")

	l, err := flock.New(path)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		log.Fatal(err)
	}
	os.Remove(path) // as a breaker would, had this process paused too long

	for range 2 {
		switch err := l.Release(); {
		case errors.Is(err, flock.ErrLockLost):
			fmt.Println("lost: the work done under the lock was not protected")
		case errors.Is(err, flock.ErrNotLocked):
			fmt.Println("not locked: released already, nothing to do")
		case err != nil:
			log.Fatal(err)
		}
	}
	// Output:
	// lost: the work done under the lock was not protected
	// not locked: released already, nothing to do
}

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

// Inspect answers, from one read of the lock file, who holds the lock,
// until when, and what this Lock would do about it.
func ExampleLock_Inspect() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.lck")

	holder, err := flock.New(path, flock.WithLifetime(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Acquire(context.Background()); err != nil {
		log.Fatal(err)
	}

	l, err := flock.New(path)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	st, err := l.Inspect()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("state:", st.State)
	fmt.Println("ours:", st.Ours)
	fmt.Println("held by this process:", st.Holder.PID == os.Getpid(), st.Alive)
	fmt.Println("expires in about a minute:", st.Expiry.Sub(st.At).Round(time.Minute))
	fmt.Println("breakable:", st.Breakable)
	// Output:
	// state: unknown
	// ours: false
	// held by this process: true true
	// expires in about a minute: 1m0s
	// breakable: false
}
