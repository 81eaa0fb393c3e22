//go:build unix

package flock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

func init() {
	roles["fencer"] = roleFencer
	roles["crasher"] = roleCrasher
}

// acquireToken takes l and returns its token.
func acquireToken(t *testing.T, l *flock.Lock) uint64 {
	t.Helper()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	token, ok := l.Token()
	if !ok {
		t.Fatal("Token() = _, false after Acquire with fencing")
	}
	return token
}

func TestFencingTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path, flock.WithFencing())
	if _, ok := l.Token(); ok {
		t.Error("Token() = _, true before Acquire")
	}
	for want := uint64(1); want <= 5; want++ {
		if got := acquireToken(t, l); got != want {
			t.Errorf("token = %d; want %d", got, want)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if _, ok := l.Token(); ok {
			t.Error("Token() = _, true after Release")
		}
	}
	// Another Lock, as another process would, goes on from there.
	if got := acquireToken(t, newLock(t, path, flock.WithFencing())); got != 6 {
		t.Errorf("token of a second Lock = %d; want 6", got)
	}
	names := slices.DeleteFunc(dirNames(t, dir), func(name string) bool { return strings.Contains(name, "|") })
	if !slices.Equal(names, []string{"app.lck", "app.lck.fence", "app.lck.fence.6"}) {
		t.Errorf("directory holds %q besides the claim", names)
	}
	// The side files are not claims, for the sweeper or anyone else.
	for _, name := range []string{"app.lck.fence", "app.lck.fence.6", "app.lck.fence.tmp-1f"} {
		if claim.IsClaimOf(name, "app.lck", "|") {
			t.Errorf("IsClaimOf(%q) = true", name)
		}
	}
	plain := newLock(t, filepath.Join(dir, "plain.lck"))
	plain.Acquire(context.Background())
	if token, ok := plain.Token(); ok {
		t.Errorf("Token() without fencing = %d, true", token)
	}
}

// TestFencingHostileSideFiles: whatever is found where the side files
// belong is never followed, read beyond a bound, or trusted; tokens still
// increase, or the acquisition fails cleanly.
func TestFencingHostileSideFiles(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, path string) // after token 3 was taken
		want    uint64                          // the next token; 0 for ErrFencing
		outside bool                            // the hint is a symlink to a file that must stay untouched
	}{
		{"hint behind", func(t *testing.T, path string) { writeFile(t, path+".fence", "1\n") }, 4, false},
		{"hint far behind", func(t *testing.T, path string) {
			// As if a taker stopped before writing its hint while many
			// acquisitions went by: more than the probes, so the
			// directory is listed.
			os.Rename(path+".fence.3", path+".fence.300")
			writeFile(t, path+".fence", "3\n")
		}, 301, false},
		{"hint ahead", func(t *testing.T, path string) { writeFile(t, path+".fence", "18446744073709551615") }, 4, false},
		{"hint garbage", func(t *testing.T, path string) { writeFile(t, path+".fence", "three") }, 4, false},
		{"hint huge", func(t *testing.T, path string) { writeFile(t, path+".fence", strings.Repeat("3", 1<<20)) }, 4, false},
		{"hint symlink", func(t *testing.T, path string) {
			os.Remove(path + ".fence")
			os.Symlink(filepath.Join(filepath.Dir(path), "outside"), path+".fence")
		}, 4, true},
		{"hint directory", func(t *testing.T, path string) {
			os.Remove(path + ".fence")
			os.Mkdir(path+".fence", 0o755)
		}, 4, false},
		{"counter symlink", func(t *testing.T, path string) {
			os.Remove(path + ".fence.3")
			os.Symlink(filepath.Join(filepath.Dir(path), "outside"), path+".fence.3")
		}, 4, true},
		{"counter planted higher", func(t *testing.T, path string) {
			writeFile(t, path+".fence.1000", "")
			os.Remove(path + ".fence")
		}, 1001, false},
		{"non-canonical names", func(t *testing.T, path string) {
			writeFile(t, path+".fence.0009", "")
			writeFile(t, path+".fence.+9", "")
			writeFile(t, path+".fence.99999999999999999999999", "")
			os.Remove(path + ".fence")
		}, 4, false},
		{"counter at its largest", func(t *testing.T, path string) {
			os.Rename(path+".fence.3", path+".fence.18446744073709551615")
			writeFile(t, path+".fence", "18446744073709551615")
		}, 0, false},
		{"counter deleted", func(t *testing.T, path string) { os.Remove(path + ".fence.3") }, 0, false},
		{"both deleted", func(t *testing.T, path string) {
			os.Remove(path + ".fence.3")
			os.Remove(path + ".fence")
		}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			outside := filepath.Join(dir, "outside")
			writeFile(t, outside, "precious")
			l := newLock(t, path, flock.WithFencing())
			for range 3 {
				acquireToken(t, l)
				l.Release()
			}
			tt.plant(t, path)
			err := l.Acquire(context.Background())
			if tt.want == 0 {
				if !errors.Is(err, flock.ErrFencing) {
					t.Fatalf("Acquire = %v; want ErrFencing", err)
				}
				t.Logf("Acquire = %v", err)
				if _, err := os.Lstat(path); err == nil {
					t.Error("the failed acquisition left the lock file")
				}
				return
			}
			if err != nil {
				t.Fatalf("Acquire = %v", err)
			}
			if got, _ := l.Token(); got != tt.want {
				t.Errorf("token = %d; want %d", got, tt.want)
			}
			if b, err := os.ReadFile(outside); err != nil || string(b) != "precious" {
				t.Errorf("the file outside = %q, %v; want it untouched", b, err)
			}
			l.Release()
			if got := acquireToken(t, l); got != tt.want+1 {
				t.Errorf("token after that = %d; want %d", got, tt.want+1)
			}
		})
	}
}

func writeFile(t *testing.T, path, contents string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fencerLock is a Lock for the fencing roles: a short lifetime, no slop,
// fast retries, so that breaks are frequent and quick.
func fencerLock() (*flock.Lock, error) {
	return flock.New(os.Getenv("LOCK"),
		flock.WithFencing(),
		flock.WithDeadOwnerBreak(),
		flock.WithLifetime(envDuration("LIFETIME", 15*time.Millisecond)),
		flock.WithClockSlop(0),
		flock.WithRetry(retry.Policy{Initial: 500 * time.Microsecond, Max: 5 * time.Millisecond, Multiplier: 2, Jitter: 0.5}))
}

// openFenceLog opens the shared log that fenced rounds append to.
func openFenceLog() (*os.File, error) {
	return os.OpenFile(filepath.Join(os.Getenv("DIR"), "log"), os.O_WRONLY|os.O_APPEND, 0)
}

// fenceLog writes one line to the log with one O_APPEND write, so that
// lines of different processes do not interleave.
func fenceLog(log *os.File, format string, args ...any) error {
	_, err := log.WriteString(fmt.Sprintf(format, args...) + "\n")
	return err
}

// fencedRound takes the lock, logs its token, and checks that the lock was
// still ours after logging: only then does the line count as written by
// the one holder. hold runs between the two.
func fencedRound(l *flock.Lock, log *os.File, hold func()) error {
	if err := l.Acquire(context.Background()); err != nil {
		return err
	}
	token, ok := l.Token()
	if !ok {
		return errors.New("no token after Acquire")
	}
	if err := fenceLog(log, "token %d %d", token, os.Getpid()); err != nil {
		return err
	}
	hold()
	if ok, _ := l.IsLocked(); !ok {
		return fenceLog(log, "lost %d", token)
	}
	return nil
}

// roleFencer takes the lock ROUNDS times. Every tenth round it holds the
// lock past its lifetime, so that another process breaks it; every tenth
// round, offset, it abandons the lock as a crashed holder would.
func roleFencer() int {
	l, err := fencerLock()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	log, err := openFenceLog()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	defer log.Close()
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	for i := range rounds {
		hold := func() {}
		if i%10 == 3 {
			hold = func() { time.Sleep(3 * l.Lifetime()) }
		}
		if err := fencedRound(l, log, hold); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
		if i%10 == 7 {
			// Abandoned: the lock stays until another process breaks it.
			if l, err = fencerLock(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return exitError
			}
			continue
		}
		if err := l.Release(); err != nil && !errors.Is(err, flock.ErrLockLost) {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
	}
	l.Close()
	return 0
}

// roleCrasher takes the lock once and exits holding it: a dead owner,
// which WithDeadOwnerBreak breaks at once.
func roleCrasher() int {
	l, err := fencerLock()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	log, err := openFenceLog()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	if err := fencedRound(l, log, func() {}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	return 0
}

// TestFencingProcesses: eight processes take one lock more than a
// thousand times, with breaks of expired and of abandoned locks and of
// locks of dead processes mixed in. Every line a holder logged while it
// held the lock (it checked after logging) must carry a token larger than
// every line logged before it, and no token may be handed out twice.
func TestFencingProcesses(t *testing.T) {
	const procs, rounds, crashers = 8, 128, 4
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	writeFile(t, filepath.Join(dir, "log"), "")
	env := []string{"LOCK=" + lock, "DIR=" + dir, "ROUNDS=" + strconv.Itoa(rounds)}
	var cmds []*exec.Cmd
	for range procs {
		cmd := testenv.Child(t, "fencer", env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for range crashers {
		cmd := testenv.Child(t, "crasher", env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	waitAll(t, cmds)

	f, err := os.Open(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var order []uint64 // tokens in the order they were logged
	lost := map[uint64]bool{}
	seen := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var token uint64
		var pid int
		switch {
		case strings.HasPrefix(sc.Text(), "token "):
			if _, err := fmt.Sscanf(sc.Text(), "token %d %d", &token, &pid); err != nil {
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			if seen[token] {
				t.Errorf("token %d handed out twice", token)
			}
			seen[token] = true
			order = append(order, token)
		case strings.HasPrefix(sc.Text(), "lost "):
			fmt.Sscanf(sc.Text(), "lost %d", &token)
			lost[token] = true
		default:
			t.Fatalf("log line %q", sc.Text())
		}
	}
	if want := procs*rounds + crashers; len(order) != want {
		t.Fatalf("%d acquisitions logged; want %d", len(order), want)
	}
	var last uint64
	for _, token := range order {
		if lost[token] {
			continue
		}
		if token <= last {
			t.Errorf("token %d logged by a holder after token %d", token, last)
		}
		last = token
	}
	t.Logf("%d acquisitions, %d of them lost to a break while held; last token %d", len(order), len(lost), last)
}

// TestFencingNetFS: two clients of one sshfs directory, each with its own
// caches, take the lock in turn. Listings there may be many seconds stale;
// the counter must still move forward every time.
func TestFencingNetFS(t *testing.T) {
	a, b := testenv.SSHFS(t)
	la := newLock(t, filepath.Join(a, "app.lck"), flock.WithFencing())
	lb := newLock(t, filepath.Join(b, "app.lck"), flock.WithFencing())
	var last uint64
	for i := range 20 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		token := acquireToken(t, l)
		if token <= last {
			t.Errorf("round %d: token %d after %d", i, token, last)
		}
		last = token
		if err := l.Release(); err != nil {
			t.Fatalf("Release = %v", err)
		}
	}
}
