//go:build linux

package compare

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"

	nfsflock "github.com/nfsflock/nfsflock/flock"
)

// Uncontended lock and unlock, each library on its own file.

func BenchmarkNfsflock(b *testing.B) {
	l, err := nfsflock.New(filepath.Join(b.TempDir(), "app.lck"))
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

// BenchmarkGofrsFlock is flock(2): fast, but not safe on many network
// filesystems, and with no lifetimes.
func BenchmarkGofrsFlock(b *testing.B) {
	l := flock.New(filepath.Join(b.TempDir(), "app.lck"))
	defer l.Close()
	for b.Loop() {
		if err := l.Lock(); err != nil {
			b.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawLinkProtocol is the floor for any link(2)-based lock:
// [RawCycle], the necessary system calls of the protocol and nothing else.
func BenchmarkRawLinkProtocol(b *testing.B) {
	lock := filepath.Join(b.TempDir(), "app.lck")
	claim := RawClaim(lock)
	for b.Loop() {
		if err := RawCycle(lock, claim, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// Hand-off: how long a waiter takes to get the lock after its holder
// releases it. Each iteration the holder releases and the waiter, already
// blocked, takes the lock.

func BenchmarkHandoffNfsflock(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.lck")
	holder, _ := nfsflock.New(path)
	waiter, _ := nfsflock.New(path)
	defer holder.Close()
	defer waiter.Close()
	ctx := context.Background()
	handoff(b, func() { holder.Acquire(ctx) }, func() { holder.Release() },
		func() { waiter.Acquire(ctx) }, func() { waiter.Release() })
}

// BenchmarkHandoffGofrsFlock uses TryLockContext with a 10 ms retry delay,
// the polling a gofrs/flock user writes to wait with a context.
func BenchmarkHandoffGofrsFlock(b *testing.B) {
	path := filepath.Join(b.TempDir(), "app.lck")
	holder := flock.New(path)
	waiter := flock.New(path)
	defer holder.Close()
	defer waiter.Close()
	ctx := context.Background()
	handoff(b, func() { holder.Lock() }, func() { holder.Unlock() },
		func() { waiter.TryLockContext(ctx, 10*time.Millisecond) }, func() { waiter.Unlock() })
}

func handoff(b *testing.B, hold, release, wait, done func()) {
	b.Helper()
	for b.Loop() {
		b.StopTimer()
		hold()
		got := make(chan struct{})
		go func() { wait(); close(got) }()
		time.Sleep(30 * time.Millisecond) // let the waiter settle into its backoff
		b.StartTimer()
		release()
		<-got
		b.StopTimer()
		done()
		b.StartTimer()
	}
}
