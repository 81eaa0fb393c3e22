//go:build unix

package flock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// Exit statuses of the child roles.
const (
	exitOverlap = 3 // two holders at once
	exitLost    = 4 // a fresh lock was taken from its holder
	exitError   = 5
)

func init() {
	roles["counter"] = roleCounter
	roles["holder"] = roleHolder
	roles["racer"] = roleRacer
	roles["stormer"] = roleStormer
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// childLock returns the Lock a child role works with, configured from its
// environment; a child that cannot make it exits.
func childLock() *flock.Lock {
	opts := []flock.Option{
		flock.WithLifetime(envDuration("LIFETIME", time.Minute)),
		flock.WithClockSlop(envDuration("SLOP", 0)),
		flock.WithRetry(retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, Jitter: 0.5}),
	}
	if os.Getenv("PORTABLE") != "" {
		opts = append(opts, flock.WithPortable())
	}
	if os.Getenv("DEADOWNER") != "" {
		opts = append(opts, flock.WithDeadOwnerBreak())
	}
	l, err := flock.New(os.Getenv("LOCK"), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitError)
	}
	return l
}

// inside marks the critical section with a file made by O_EXCL, which a
// second holder would fail to make.
func inside(marker string, fn func() error) int {
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "overlap: %v\n", err)
		return exitOverlap
	}
	f.Close()
	if err := fn(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	if err := os.Remove(marker); err != nil {
		fmt.Fprintf(os.Stderr, "overlap: marker vanished: %v\n", err)
		return exitOverlap
	}
	return 0
}

// roleCounter increments a counter file ROUNDS times under the lock.
func roleCounter() int {
	l := childLock()
	defer l.Close()
	counter := filepath.Join(os.Getenv("DIR"), "counter")
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for range rounds {
		if err := l.Acquire(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
		code := inside(filepath.Join(os.Getenv("DIR"), "marker"), func() error {
			b, _ := os.ReadFile(counter)
			n, _ := strconv.Atoi(string(b))
			return os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o644)
		})
		if code != 0 {
			return code
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitLost
		}
	}
	return 0
}

// roleHolder takes the lock, says so on stdout and waits to be killed.
func roleHolder() int {
	l := childLock()
	if err := l.Acquire(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	fmt.Println("held", l.ClaimPath())
	select {}
}

// roleRacer waits for the lock, breaking it once expired, and holds it a
// moment, checking that nobody else holds it meanwhile and that it is
// still ours before releasing.
func roleRacer() int {
	l := childLock()
	defer l.Close()
	if err := l.Acquire(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	code := inside(filepath.Join(os.Getenv("DIR"), "marker"), func() error {
		time.Sleep(20 * time.Millisecond)
		if ok, err := l.IsLocked(); !ok {
			return fmt.Errorf("lost a fresh lock: %v", err)
		}
		return nil
	})
	if code != 0 {
		return code
	}
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitLost
	}
	return 0
}

// startHolder starts a holder process and returns once it holds the lock,
// with the path of its claim.
func startHolder(t *testing.T, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := testenv.Child(t, "holder", env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	claim, ok := strings.CutPrefix(strings.TrimSpace(line), "held ")
	if err != nil || !ok {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return cmd, claim
}

func waitAll(t *testing.T, cmds []*exec.Cmd) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cmd.Wait()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
}

// TestProcessesExclude: eight processes increment a shared counter under
// the lock; an O_EXCL marker catches any overlap. On each filesystem.
func TestProcessesExclude(t *testing.T) {
	storm(t)
	onEachFilesystem(t, testProcessesExclude)
}

func testProcessesExclude(t *testing.T, dir string) {
	const procs, rounds = 8, 40
	lock := filepath.Join(dir, "app.lck")
	var cmds []*exec.Cmd
	for range procs {
		cmd := testenv.Child(t, "counter", "LOCK="+lock, "DIR="+dir, "ROUNDS="+strconv.Itoa(rounds))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	waitAll(t, cmds)
	b, _ := os.ReadFile(filepath.Join(dir, "counter"))
	if got := string(b); got != strconv.Itoa(procs*rounds) {
		t.Errorf("counter = %s; want %d", got, procs*rounds)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("left behind: %q", names)
	}
}

// TestKilledHolderIsBroken: a holder killed with SIGKILL leaves its lock,
// which another process breaks once it has expired, claim file and all.
// On each filesystem.
func TestKilledHolderIsBroken(t *testing.T) {
	onEachFilesystemAtOnce(t, testKilledHolderIsBroken)
}

func testKilledHolderIsBroken(t *testing.T, dir string) {
	lock := filepath.Join(dir, "app.lck")
	holder, claim := startHolder(t, "LOCK="+lock, "LIFETIME=500ms")
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	l := newLock(t, lock, flock.WithClockSlop(0))
	if s, err := l.State(); err != nil || (s != flock.Stale) {
		t.Errorf("State() of a dead holder's lock = %v, %v; want stale", s, err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if _, err := os.Stat(claim); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead holder's claim %s is still there: %v", claim, err)
	}
	l.Release()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}
}

// TestRacingBreakers: several processes wait on one lock whose holder was
// killed, and race to break it when it expires. Each must find itself the
// only holder and keep its fresh lock until it releases it. On each
// filesystem.
func TestRacingBreakers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: three rounds of six racing breakers on each filesystem (about 1.5 s each); it runs without -short, as under .ci/test")
	}
	storm(t)
	onEachFilesystem(t, testRacingBreakers)
}

func testRacingBreakers(t *testing.T, fsDir string) {
	const racers = 6
	for round := range 3 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			dir := filepath.Join(fsDir, strconv.Itoa(round))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, "app.lck")
			holder, _ := startHolder(t, "LOCK="+lock, "LIFETIME=300ms")
			holder.Process.Signal(syscall.SIGKILL)
			holder.Wait()
			var cmds []*exec.Cmd
			for range racers {
				cmd := testenv.Child(t, "racer", "LOCK="+lock, "DIR="+dir)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, cmd)
			}
			waitAll(t, cmds)
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind: %q", names)
			}
		})
	}
}

// TestSweepStaleClaims: claims of dead processes of this host are removed
// when a lock is broken; claims of other hosts and of live processes stay.
func TestSweepStaleClaims(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	host, _ := os.Hostname()
	dead := deadPID(t)
	tag := fsys.OS.Namespace()
	stale := claim.Name(lock, "|", host, dead, 11, tag)
	foreign := claim.Name(lock, "|", "elsewhere", dead, 12, tag)
	live := claim.Name(lock, "|", host, 1, 13, tag)
	other := claim.Name(filepath.Join(dir, "other.lck"), "|", host, dead, 14, tag)
	// Without our namespace tag (flufl.lock's claims, or a Go process in
	// another pid namespace), a pid that runs no process here proves
	// nothing.
	untagged := filepath.Join(dir, "app.lck|"+host+"|"+itoa(dead)+"|15")
	otherNS := claim.Name(lock, "|", host, dead, 16, tag%claim.MaxTag+1)
	for _, p := range []string{stale, foreign, live, other, untagged, otherNS} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(lock, []byte("expired"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(lock, old, old)
	l := newLock(t, lock)
	if ok, err := l.TryAcquire(); !ok || err != nil {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale claim of a dead local process kept: %v", err)
	}
	for _, p := range []string{foreign, live, other, untagged, otherNS} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was swept: %v", filepath.Base(p), err)
		}
	}
}

// TestSweepOnFirstAcquire: what crashed processes left is cleared by the
// next process to take the lock, even when it does not have to wait.
func TestSweepOnFirstAcquire(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	host, _ := os.Hostname()
	stale := claim.Name(lock, "|", host, deadPID(t), 11, fsys.OS.Namespace())
	if err := os.WriteFile(stale, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLock(t, lock)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dead process's claim survived the first acquisition: %v", err)
	}
}

// roleStormer takes the lock over and over until killed. Inside, it
// claims a marker file with its pid; a marker left by a holder that was
// killed inside (its pid no longer runs) is taken over, but one of a live
// process means two holders at once. With COUNT set it appends a byte to
// that file at each turn, so that its caller can tell the storm took turns.
func roleStormer() int {
	l := childLock()
	marker := filepath.Join(os.Getenv("DIR"), "marker")
	me := []byte(strconv.Itoa(os.Getpid()))
	// Each process writes its own file and links it to the marker: a file
	// shared by all would, when left linked by a killed holder, be
	// rewritten through the marker.
	mine := marker + "." + string(me)
	for {
		if err := l.Acquire(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
		got := time.Now()
		if err := os.WriteFile(mine, me, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
		if err := os.Link(mine, marker); err != nil {
			b, _ := os.ReadFile(marker)
			pid, _ := strconv.Atoi(string(b))
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				c, _ := os.ReadFile(os.Getenv("LOCK"))
				ok, err := l.IsLocked()
				fmt.Fprintf(os.Stderr, "overlap with live holder %d (we %d, held for %v, IsLocked %v %v, lock names %q)\n", pid, os.Getpid(), time.Since(got), ok, err, c)
				return exitOverlap
			}
			os.Remove(marker)
			if err := os.Link(mine, marker); err != nil {
				fmt.Fprintf(os.Stderr, "overlap: %v\n", err)
				return exitOverlap
			}
		}
		os.Remove(mine)
		os.Remove(marker)
		if count := os.Getenv("COUNT"); count != "" {
			// One byte a turn, appended to a file on a local disk.
			if f, err := os.OpenFile(count, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Write([]byte{'.'})
				f.Close()
			}
		}
		if err := l.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if ranOut(err) {
				continue // a turn longer than the lifetime: lost as it should be
			}
			return exitLost
		}
	}
}

// ranOut reports whether err is Release's report that the holder's own
// lease ran out before it released, the lock file being still its own: a
// turn that a loaded machine made outlast the lifetime, which breaks no
// promise. A lock file taken from a holder within its lease is reported
// otherwise.
func ranOut(err error) bool {
	return errors.Is(err, flock.ErrLockLost) && strings.Contains(err.Error(), "before the release")
}

// TestKillStorm: processes take the lock in a loop while others are
// killed with SIGKILL at random moments, inside and outside the lock, and
// replaced. No two live processes ever hold it at once, and once the storm
// is over, one more acquisition leaves nothing behind but the lock's own
// files: dead holders' locks are broken and their claims swept. On each
// filesystem.
func TestKillStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("kill storm skipped in -short mode")
	}
	storm(t)
	onEachFilesystem(t, testKillStorm)
}

func testKillStorm(t *testing.T, dir string) {
	const procs, kills = 6, 40
	lock := filepath.Join(dir, "app.lck")
	env := []string{"LOCK=" + lock, "DIR=" + dir, "LIFETIME=500ms"}
	start := func() *exec.Cmd {
		cmd := testenv.Child(t, "stormer", env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	running := make([]*exec.Cmd, procs)
	for i := range running {
		running[i] = start()
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range kills {
		time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond)
		i := rnd.IntN(procs)
		running[i].Process.Signal(syscall.SIGKILL)
		if err := running[i].Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("stormer ended by itself: %v", err)
		}
		running[i] = start()
	}
	for _, cmd := range running {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	l := newLock(t, lock, flock.WithClockSlop(0))
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	for _, name := range dirNames(t, dir) {
		if !strings.HasPrefix(name, "marker") {
			t.Errorf("left behind: %q", name)
		}
	}
}
