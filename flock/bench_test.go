//go:build unix

package flock_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/flock"
)

// BenchmarkAcquireRelease is an uncontended Acquire and Release.
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

// BenchmarkRawProtocol is the baseline: the bare system calls of
// flufl.lock's protocol, with no checks: create and write the claim, set
// its times, link it, unlink both.
func BenchmarkRawProtocol(b *testing.B) {
	dir := b.TempDir()
	lock := filepath.Join(dir, "app.lck")
	claim := lock + "|host|" + strconv.Itoa(unix.Getpid()) + "|1234567890123456789"
	data := []byte(claim)
	for b.Loop() {
		fd, err := unix.Open(claim, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		unix.Write(fd, data)
		unix.Close(fd)
		ts := unix.NsecToTimespec(time.Now().Add(time.Minute).UnixNano())
		unix.UtimesNanoAt(unix.AT_FDCWD, claim, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		if err := unix.Link(claim, lock); err != nil {
			b.Fatal(err)
		}
		unix.Unlink(lock)
		unix.Unlink(claim)
	}
}
