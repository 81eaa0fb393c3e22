//go:build unix

package flock_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestFluflLinkedPastExpiryNotBroken: flufl.lock's lock() times its claim
// when it starts waiting and again only after its link has taken the
// lock, so a Python waiter kept waiting longer than its lifetime and the
// clock slop links a lock file that has already expired. A Go waiter that
// looks in that moment must not break it: lock() returns all the same,
// and both would hold the lock (the mixed kill storms met this, a Go
// waiter breaking such a lock 0.1 ms after its link). The unmodified
// flufl.lock is held in that moment by a profile hook
// (testdata/flufl/linkwindow.py).
func TestFluflLinkedPastExpiryNotBroken(t *testing.T) {
	python := testenv.FluflPython(t)
	const pyLifetime = time.Second
	slop := time.Second
	lockPath := filepath.Join(t.TempDir(), "app.lck")
	holder := newLock(t, lockPath, flock.WithLifetime(time.Minute))
	if err := holder.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script(t, "linkwindow.py"), lockPath, "1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok || !strings.HasPrefix(line, want+" ") {
				t.Fatalf("python said %q; want %q", line, want)
			}
			return strings.TrimPrefix(line, want+" ")
		case <-time.After(30 * time.Second):
			t.Fatalf("python never said %q", want)
		}
		return ""
	}
	next("waiting")
	// Keep flufl waiting past its lifetime, the Go waiter's slop and the
	// two seconds that a waiter waits out for an expiry on a whole second
	// (flufl.lock's are).
	const cut = 2 * time.Second
	time.Sleep(pyLifetime + slop + cut + 500*time.Millisecond)
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	var linked struct {
		Contents string  `json:"c"`
		MTime    float64 `json:"mtime"`
	}
	if err := json.Unmarshal([]byte(next("linked")), &linked); err != nil {
		t.Fatal(err)
	}
	expiry := time.Unix(0, int64(linked.MTime*1e9))
	if !time.Now().After(expiry.Add(slop + cut)) {
		t.Fatalf("not staged: the lock file flufl linked expires at %v, not before now less the slop and a cut", expiry)
	}
	waiter := newLock(t, lockPath, flock.WithClockSlop(slop))
	ok, err := waiter.TryAcquire()
	t.Logf("flufl.lock between its link and its timing (lock file %q, expired %v ago); a Go waiter's TryAcquire = %v, %v",
		linked.Contents, time.Since(expiry).Round(time.Millisecond), ok, err)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(stdin, "go")
	returned := next("returned")
	if ok {
		t.Errorf("two holders: the Go waiter broke the lock file flufl.lock had just linked, and flufl's lock() returned (%s)", returned)
	}
	if !strings.Contains(returned, `"is_locked": true`) {
		t.Errorf("flufl.lock's lock() returned without the lock: %s", returned)
	}
	if ok {
		return
	}
	if ok, err := waiter.TryAcquire(); ok || err != nil {
		t.Errorf("a Go waiter once flufl.lock has timed its lock: TryAcquire = %v, %v; want false, nil", ok, err)
	}
	fmt.Fprintln(stdin, "end")
}

// TestSettlingOnlyDelaysFluflFiles: what TestFluflLinkedPastExpiryNotBroken
// spares is a lock file linked from a claim without our namespace tag
// (flufl.lock's), so with two links, that changed after its expiry; it is
// spared only until it has settled, two seconds, and a lock file of ours,
// or one with a single link, that changed so is broken at once, as before.
func TestSettlingOnlyDelaysFluflFiles(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		link   bool
		spared bool
	}{
		{"flufl.lock's", true, true},
		{"flufl.lock's, one link", false, false},
		{"ours", true, false},
		{"not a claim", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lockPath := filepath.Join(dir, "app.lck")
			contents := lockPath + "|" + host + "|999999|1234567890"
			switch tc.name {
			case "ours":
				// A claim of a Go Lock of another process, tagged.
				other := newLock(t, lockPath)
				if err := other.Acquire(context.Background()); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(lockPath)
				if err != nil {
					t.Fatal(err)
				}
				other.Close()
				contents = string(b)
				if _, ok := claim.TagOf(contents, "|"); !ok {
					t.Skip("this system gives claims no namespace tag: Go's lock files settle too")
				}
			case "not a claim":
				contents = "old holder"
			}
			// As flufl.lock makes it: the claim, then its link.
			claimPath := filepath.Join(dir, "claim")
			if tc.link && filepath.IsAbs(contents) {
				claimPath = contents
			}
			if err := os.WriteFile(claimPath, []byte(contents), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(claimPath, lockPath); err != nil {
				t.Fatal(err)
			}
			if !tc.link {
				os.Remove(claimPath)
			}
			expired := time.Now().Add(-time.Minute)
			if err := os.Chtimes(lockPath, expired, expired); err != nil {
				t.Fatal(err)
			}
			w := newLock(t, lockPath, flock.WithClockSlop(time.Second))
			ok, err := w.TryAcquire()
			if err != nil {
				t.Fatal(err)
			}
			if ok == tc.spared {
				t.Fatalf("TryAcquire at once = %v; want %v (%q expired a minute ago, changed just now)", ok, !tc.spared, contents)
			}
			if ok {
				return
			}
			time.Sleep(2100 * time.Millisecond)
			if ok, err := w.TryAcquire(); !ok || err != nil {
				t.Errorf("TryAcquire once settled = %v, %v; want true", ok, err)
			}
		})
	}
}
