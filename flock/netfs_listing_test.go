//go:build unix

package flock_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

func init() {
	roles["lister"] = roleLister
}

// roleLister lists the directory LIST_DIR over and over, from four
// goroutines, until it is killed, or exits 1 once the directory cannot
// be listed.
func roleLister() int {
	dir := os.Getenv("LIST_DIR")
	for range 3 {
		go func() {
			for {
				os.ReadDir(dir)
			}
		}()
	}
	for {
		if _, err := os.ReadDir(dir); err != nil {
			return 1
		}
	}
}

// TestNetFSAcquireBesideListings takes and releases a lock many times on
// sshfs, each time with a new Lock and so a new claim, while another
// process lists the directory without pause. sshfs then sometimes answers
// a claim's read of its attributes, just after its expiry was set, from
// attributes that a listing read before (one create in about 3,000 here):
// Acquire took the expiry for one the filesystem cannot store and failed
// with ErrInvalid (clean-clone CI, in TestSharedForgedContents).
// TestStaleTimesAfterSetting stages that every time; this is the real
// thing, which a run may or may not meet.
func TestNetFSAcquireBesideListings(t *testing.T) {
	t.Parallel()
	a, _ := testenv.SSHFS(t)
	cmd := testenv.Child(t, "lister", "LIST_DIR="+a)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	path := filepath.Join(a, "app.lck")
	var logged strings.Builder
	logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rounds, end := 0, time.Now().Add(8*time.Second)
	if testing.Short() {
		end = time.Now().Add(time.Second)
	}
	for ; time.Now().Before(end); rounds++ {
		select {
		case err := <-exited:
			t.Fatalf("the lister exited after %d rounds: %v", rounds, err)
		default:
		}
		l, err := flock.New(path, flock.WithLifetime(time.Minute), flock.WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(boundedContext(t)); err != nil {
			l.Close()
			t.Fatalf("round %d: Acquire = %v", rounds, err)
		}
		if err := l.Release(); err != nil {
			t.Fatalf("round %d: Release = %v", rounds, err)
		}
		l.Close()
	}
	t.Logf("%d acquisitions beside a process listing the directory; times set again after a stale read: %d", rounds, strings.Count(logged.String(), "setting them again"))
}
