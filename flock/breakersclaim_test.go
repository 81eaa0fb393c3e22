//go:build unix

package flock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestBreakersClaimVanishedBeforeLink: a breaker's fresh claim is gone
// from its name when the breaker links it to the breakers' path (a storm
// through sshfs met this once in a few CI runs: "link <claim>
// app.lck.break: no such file or directory", which ended the waiter's
// Acquire). The break is given up as under contention, and the next
// attempt, with a fresh claim, breaks the expired lock.
func TestBreakersClaimVanishedBeforeLink(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	opts := expiredHolder(t, path)
	vanished := 0
	fs := &fsystest.Faulty{FS: fsys.OS, OnLink: func(next func(string, string) error, o, n string) error {
		if n == path+".break" && vanished == 0 {
			vanished++
			if err := os.Remove(o); err != nil {
				t.Errorf("removing the breaker's claim: %v", err)
			}
		}
		return next(o, n)
	}}
	waiter := newLock(t, path, append(opts, withFS(fs))...)
	if ok, err := waiter.TryAcquire(); ok || err != nil {
		t.Fatalf("TryAcquire whose breakers' claim vanished = %v, %v; want false, nil", ok, err)
	}
	if vanished != 1 {
		t.Fatalf("the breakers' claim was not staged to vanish (%d)", vanished)
	}
	if ok, err := waiter.TryAcquire(); !ok || err != nil {
		t.Fatalf("the next TryAcquire = %v, %v; want true, nil", ok, err)
	}
	if err := waiter.Release(); err != nil {
		t.Fatal(err)
	}
}

// expiredHolder takes the lock at path with a one-second lifetime and
// slop on a clock of its own, moves that clock past the expiry, the slop
// and any cut, and returns the options, that clock's, for a waiter.
func expiredHolder(t *testing.T, path string) []Option {
	t.Helper()
	clk := newOffClock()
	opts := []Option{WithClock(clk), withRunClock(clk.run), withoutTimeBase(), WithLifetime(time.Second), WithClockSlop(time.Second)}
	holder := newLock(t, path, opts...)
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.advance(5 * time.Second)
	return opts
}
