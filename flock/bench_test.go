//go:build unix

package flock_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/retry"
)

// The hot paths, each on its own. The figures that compare them with the
// raw system calls and with other libraries come from the comparison
// module (compare/, docs/BENCHMARKS.md), which measures all in one run.

// BenchmarkAcquireRelease is an uncontended Acquire and Release of one
// Lock used again and again.
func BenchmarkAcquireRelease(b *testing.B) {
	l, err := flock.New(filepath.Join(b.TempDir(), "app.lck"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewAcquireRelease is an uncontended cycle with a new Lock each
// time, as package guard makes one: New, Acquire, Release, Close.
func BenchmarkNewAcquireRelease(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.lck")
	ctx := context.Background()
	for b.Loop() {
		l, err := flock.New(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}

// BenchmarkTryAcquireHeld is one failed attempt on a lock another Lock
// holds: what each retry of a waiter costs.
func BenchmarkTryAcquireHeld(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.lck")
	holder, err := flock.New(path)
	if err != nil {
		b.Fatal(err)
	}
	defer holder.Close()
	if err := holder.Acquire(context.Background()); err != nil {
		b.Fatal(err)
	}
	l, err := flock.New(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for b.Loop() {
		if ok, err := l.TryAcquire(); ok || err != nil {
			b.Fatalf("TryAcquire() = %v, %v; want false, nil", ok, err)
		}
	}
}

// BenchmarkHandoff is the time from a Release to the return of an Acquire
// that was waiting for it in another goroutine, with a retry policy that
// polls once an hour: where the system wakes waiters (Linux), this is the
// wake-up's latency, and elsewhere it would not end.
func BenchmarkHandoff(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.lck")
	holder, err := flock.New(path)
	if err != nil {
		b.Fatal(err)
	}
	defer holder.Close()
	waiter, err := flock.New(path, flock.WithRetry(retry.Constant(time.Hour)))
	if err != nil {
		b.Fatal(err)
	}
	defer waiter.Close()
	if runtime.GOOS != "linux" {
		b.Skip("waiters are woken by a release only on Linux; elsewhere they poll")
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		if err := holder.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- waiter.Acquire(ctx) }()
		time.Sleep(5 * time.Millisecond) // into its wait
		b.StartTimer()
		if err := holder.Release(); err != nil {
			b.Fatal(err)
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := waiter.Release(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
