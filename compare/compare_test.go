//go:build linux

package compare

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"

	nfsflock "github.com/nfsflock/nfsflock/flock"
)

// Uncontended lock and unlock, each library on its own file.

func BenchmarkNfsflock(b *testing.B) { nfsflockCycles(b, true) }

// BenchmarkNfsflockNew makes a new Lock each cycle, as guard does.
func BenchmarkNfsflockNew(b *testing.B) { nfsflockCycles(b, false) }

func nfsflockCycles(b *testing.B, reuse bool) {
	path := filepath.Join(b.TempDir(), "app.lck")
	l, err := nfsflock.New(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { l.Close() }()
	ctx := context.Background()
	for b.Loop() {
		if !reuse {
			l.Close()
			if l, err = nfsflock.New(path); err != nil {
				b.Fatal(err)
			}
		}
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
func BenchmarkRawLinkProtocol(b *testing.B) { rawCycles(b, RawCycle) }

// rawCycles runs cycle, a raw program's whole cycle (RawCycle or a floor),
// on a lock of its own, under RawClaim's name.
func rawCycles(b *testing.B, cycle func(lock, claim string, lifetime time.Duration) error) {
	lock := filepath.Join(b.TempDir(), "app.lck")
	claim := RawClaim(lock)
	for b.Loop() {
		if err := cycle(lock, claim, time.Minute); err != nil {
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

// The floors of nfsflock's rules (floor.go): the raw system calls that a
// cycle keeping every safety step must make, with a fresh named claim
// each time, an unnamed one, and a claim kept from one cycle to the next
// (in place, renamed, or moved).

func BenchmarkFloorSafeCycle(b *testing.B) { rawCycles(b, SafeCycle) }

func BenchmarkFloorKeptClaim(b *testing.B) {
	keptClaim(b, func(k *KeptClaim) error { return k.Cycle(time.Minute) })
}

// BenchmarkFloorNFSOnly is the kept claim's NFS-safe cycle with one look,
// before the release, and none of nfsflock's others.
func BenchmarkFloorNFSOnly(b *testing.B) {
	keptClaim(b, func(k *KeptClaim) error { return k.NFSCycle(time.Minute) })
}

// BenchmarkFloorFluflKept is flufl.lock's own steps on a kept claim.
func BenchmarkFloorFluflKept(b *testing.B) {
	keptClaim(b, func(k *KeptClaim) error { return k.FluflCycle(time.Minute) })
}

// BenchmarkFloorLinkOnly is a kept claim linked and unlinked, nothing
// else: below it no link(2) lock can go.
func BenchmarkFloorLinkOnly(b *testing.B) { keptClaim(b, (*KeptClaim).LinkOnlyCycle) }

// keptClaim runs cycle on one kept claim under one name.
func keptClaim(b *testing.B, cycle func(k *KeptClaim) error) {
	lock := filepath.Join(b.TempDir(), "app.lck")
	k, err := NewKeptClaim(lock, RawClaim(lock))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	for b.Loop() {
		if err := cycle(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorKeptClaimRenamed(b *testing.B) {
	keptCycles(b, (*KeptClaim).RenamedCycle)
}

func BenchmarkFloorKeptClaimMoved(b *testing.B) {
	keptCycles(b, (*KeptClaim).MovedCycle)
}

// keptCycles runs cycle on a kept claim, under two names of equal length
// in turn.
func keptCycles(b *testing.B, cycle func(k *KeptClaim, lifetime time.Duration, next string) error) {
	lock := filepath.Join(b.TempDir(), "app.lck")
	base := RawClaim(lock)
	names := [2]string{base, base[:len(base)-1] + "0"}
	k, err := NewKeptClaim(lock, names[0])
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	i := 0
	for b.Loop() {
		i++
		if err := cycle(k, time.Minute, names[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorUnnamedClaim(b *testing.B) { rawCycles(b, UnnamedCycle) }

// TestFloors runs each floor a few times: each cycle must find its own
// files where it looks, and leave nothing behind but a kept claim, which
// Close removes.
func TestFloors(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	left := func(want int) {
		t.Helper()
		names, err := os.ReadDir(dir)
		if err != nil || len(names) != want {
			t.Fatalf("directory holds %v (%v); want %d files", names, err, want)
		}
	}
	for range 3 {
		if err := SafeCycle(lock, RawClaim(lock), time.Minute); err != nil {
			t.Fatal(err)
		}
		left(0)
	}
	base := RawClaim(lock)
	names := [2]string{base, base[:len(base)-1] + "0"}
	k, err := NewKeptClaim(lock, names[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := k.Cycle(time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := k.RenamedCycle(time.Minute, names[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
		left(1)
	}
	names[1] = base[:len(base)-1] + "1"
	for i := range 4 {
		if err := k.MovedCycle(time.Minute, names[i%2]); err != nil {
			t.Fatal(err)
		}
		left(1)
	}
	if err := k.Cycle(time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := k.LinkOnlyCycle(); err != nil {
			t.Fatal(err)
		}
		left(1)
		if err := k.NFSCycle(time.Minute); err != nil {
			t.Fatal(err)
		}
		left(1)
		if err := k.FluflCycle(time.Minute); err != nil {
			t.Fatal(err)
		}
		left(1)
	}
	for range 3 {
		if err := UnnamedCycle(lock, RawClaim(lock), time.Minute); err != nil {
			t.Fatal(err)
		}
		left(1)
	}
	// A lock file in the way fails the cycle.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, lock); err != nil {
		t.Fatal(err)
	}
	if err := k.Cycle(time.Minute); err == nil {
		t.Error("Cycle with another file at the lock path succeeded")
	}
	os.Remove(lock)
	os.Remove(other)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	left(0)
}
