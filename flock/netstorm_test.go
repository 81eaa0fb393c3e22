//go:build unix

package flock_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestNetFSKillStorm is the kill storm on a network filesystem, where
// names cannot be swapped and a removal of another's breakers' lock moves
// it aside: processes take one lock through the two sshfs clients and
// through the server's own disk (a local ext4, where the removal swaps
// names instead: the mixed directory of docs/RELIABILITY.md), and are
// SIGKILLed at random, each one a moment after another's kill. Between
// kills the test plants breakers' locks at L.break as a breaker killed
// just after taking it would leave them: a claim of a dead process of
// this host, linked there with a fresh expiry or a long-past one. Half
// the processes break a dead process's lock at once
// (WithDeadOwnerBreak), so that removals of those files race with each
// other and with the breaks they hold up, far more often than kills
// alone make them race.
//
// The referee is the stormers' marker (roleStormer), reached by everyone
// through mount A alone, so that its own view is never stale.
func TestNetFSKillStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: processes through two sshfs clients and the server's disk are killed for 20 s; it runs without -short, as under .ci/test")
	}
	storm(t)
	a, b := testenv.SSHFS(t)
	views := []string{a, b, testenv.SSHFSServer(t, a)}
	const procs, length = 6, 20 * time.Second
	count := filepath.Join(t.TempDir(), "turns")
	start := func(i int) *exec.Cmd {
		env := []string{"LOCK=" + filepath.Join(views[i%len(views)], "app.lck"), "DIR=" + a,
			"LIFETIME=2s", "SLOP=1s", "COUNT=" + count}
		if i%2 == 0 {
			env = append(env, "DEADOWNER=1")
		}
		cmd := testenv.Child(t, "stormer", env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	running := make([]*exec.Cmd, procs)
	stop := func() {
		for _, cmd := range running {
			if cmd != nil && cmd.ProcessState == nil {
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
			}
		}
	}
	t.Cleanup(stop) // before the directory goes, if the test ends early
	for i := range running {
		running[i] = start(i)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tag := fsys.OS.Namespace()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills, planted := 0, 0
	for end := time.Now().Add(length); time.Now().Before(end); {
		time.Sleep(time.Duration(rnd.IntN(100)) * time.Millisecond)
		if rnd.IntN(3) == 0 {
			i := rnd.IntN(procs)
			running[i].Process.Signal(syscall.SIGKILL)
			if err := running[i].Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Errorf("stormer %d (through %s) ended by itself: %v", i, views[i%len(views)], err)
			}
			running[i] = start(i)
			kills++
			continue
		}
		if plantDeadBreaker(views[rnd.IntN(len(views))], host, tag, rnd) {
			planted++
		}
	}
	stop()
	turns, _ := os.ReadFile(count)
	t.Logf("%d turns, %d kills, %d breakers' locks planted", len(turns), kills, planted)
	if len(turns) < 20 {
		t.Errorf("only %d turns in %v: the storm hardly took the lock", len(turns), length)
	}
	// What the storm left is the lock's to clear: a killed holder's lock
	// file and breakers' lock expire, and this process's first
	// acquisition sweeps the claims and aside names of the dead.
	l := newLock(t, filepath.Join(a, "app.lck"), flock.WithClockSlop(time.Second))
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	for _, name := range testenv.Names(t, a) {
		if !strings.HasPrefix(name, "marker") {
			t.Errorf("left behind: %q", name)
		}
	}
}

// plantDeadBreaker links at view's L.break, if nothing is there, what a
// breaker of this host killed just after its link leaves: its claim, named
// for a process that has exited, whose expiry is a breaker's (5 s ahead)
// or long past. It reports whether the link was made: the claim may be
// swept as soon as it is made, being a dead process's.
func plantDeadBreaker(view, host string, tag uint64, rnd *rand.Rand) bool {
	dead := exec.Command("true")
	if dead.Run() != nil {
		return false
	}
	name := claim.Name(filepath.Join(view, "app.lck"), "|", host, dead.ProcessState.Pid(), rnd.Uint64()>>1, tag)
	if os.WriteFile(name, []byte(name), 0o644) != nil {
		return false
	}
	expiry := time.Now().Add(5 * time.Second)
	if rnd.IntN(2) == 0 {
		expiry = time.Now().Add(-time.Hour)
	}
	return os.Chtimes(name, expiry, expiry) == nil && os.Link(name, filepath.Join(view, "app.lck.break")) == nil
}
