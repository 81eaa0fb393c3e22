//go:build unix

package flock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

func init() {
	roles["fencer"] = roleFencer
	roles["crasher"] = roleCrasher
	roles["hintcrasher"] = roleHintCrasher
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
	for _, name := range []string{"app.lck.fence", "app.lck.fence.6"} {
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
// increase, or the acquisition fails cleanly with ErrFencing and an error
// that names the file and says what to do.
func TestFencingHostileSideFiles(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, path string) // after token 3 was taken
		want    uint64                          // the next token; 0 for ErrFencing
		msg     string                          // for ErrFencing: part of the error
		outside bool                            // the hint is a symlink to a file that must stay untouched
	}{
		{"hint behind", func(t *testing.T, path string) { writeFile(t, path+".fence", "1\n") }, 4, "", false},
		{"hint far behind", func(t *testing.T, path string) {
			// As if a taker stopped before writing its hint while many
			// acquisitions went by: more than the probes, so the
			// directory is listed.
			mustRename(t, path+".fence.3", path+".fence.300")
			writeFile(t, path+".fence", "3\n")
		}, 301, "", false},
		{"hint ahead", func(t *testing.T, path string) {
			writeFile(t, path+".fence", "18446744073709551615")
		}, 0, "write the counter's value into it", false},
		{"hint garbage", func(t *testing.T, path string) { writeFile(t, path+".fence", "three") }, 4, "", false},
		{"hint huge", func(t *testing.T, path string) { writeFile(t, path+".fence", strings.Repeat("3", 1<<20)) }, 4, "", false},
		{"hint symlink", func(t *testing.T, path string) {
			mustRemove(t, path+".fence")
			mustSymlink(t, filepath.Join(filepath.Dir(path), "outside"), path+".fence")
		}, 4, "", true},
		{"hint directory", func(t *testing.T, path string) {
			mustRemove(t, path+".fence")
			mustMkdir(t, path+".fence")
		}, 4, "", false},
		{"counter symlink", func(t *testing.T, path string) {
			mustRemove(t, path+".fence.3")
			mustSymlink(t, filepath.Join(filepath.Dir(path), "outside"), path+".fence.3")
		}, 0, "app.lck.fence.3: flock: fencing counter unusable: a symlink", true},
		{"counter directory", func(t *testing.T, path string) {
			mustRemove(t, path+".fence.3")
			mustMkdir(t, path+".fence.3")
		}, 0, "app.lck.fence.3: flock: fencing counter unusable: a directory", false},
		{"counter planted higher", func(t *testing.T, path string) {
			writeFile(t, path+".fence.1000", "")
			writeFile(t, path+".fence", "garbage") // so that the directory is listed
		}, 1001, "", false},
		{"non-canonical names", func(t *testing.T, path string) {
			writeFile(t, path+".fence.0009", "")
			writeFile(t, path+".fence.+9", "")
			writeFile(t, path+".fence.99999999999999999999999", "")
			writeFile(t, path+".fence", "garbage")
		}, 4, "", false},
		{"counter at its largest", func(t *testing.T, path string) {
			mustRename(t, path+".fence.3", path+".fence.18446744073709551615")
			writeFile(t, path+".fence", "18446744073709551615")
		}, 0, "restart tokens at 1", false},
		{"counter deleted", func(t *testing.T, path string) { mustRemove(t, path+".fence.3") }, 0, "delete app.lck.fence to restart tokens at 1", false},
		{"hint deleted", func(t *testing.T, path string) { mustRemove(t, path+".fence") }, 1, "", false},
		{"both deleted", func(t *testing.T, path string) {
			mustRemove(t, path+".fence.3")
			mustRemove(t, path+".fence")
		}, 1, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			outside := filepath.Join(dir, "outside")
			writeFile(t, outside, "precious")
			l := newLock(t, path, flock.WithFencing())
			takeTokens(t, l, 3)
			tt.plant(t, path)
			err := l.Acquire(context.Background())
			if b, rerr := os.ReadFile(outside); rerr != nil || string(b) != "precious" {
				t.Errorf("the file outside = %q, %v; want it untouched", b, rerr)
			}
			if tt.want == 0 {
				if !errors.Is(err, flock.ErrFencing) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Acquire = %v; want ErrFencing saying %q", err, tt.msg)
				}
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
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if got := acquireToken(t, l); got != tt.want+1 {
				t.Errorf("token after that = %d; want %d", got, tt.want+1)
			}
		})
	}
}

// takeTokens acquires and releases l n times, and returns the tokens.
func takeTokens(t *testing.T, l *flock.Lock, n int) []uint64 {
	t.Helper()
	var tokens []uint64
	for range n {
		tokens = append(tokens, acquireToken(t, l))
		if err := l.Release(); err != nil {
			t.Fatalf("Release = %v", err)
		}
	}
	return tokens
}

// fencedLock returns a Lock with fencing whose filesystem calls go
// through f, on the real filesystem unless f wraps another.
func fencedLock(t *testing.T, path string, f *fsystest.Faulty, opts ...flock.Option) *flock.Lock {
	t.Helper()
	if f.FS == nil {
		f.FS = fsys.OS
	}
	return newLock(t, path, append(opts, flock.WithFencing(), flock.SimWithFS(f))...)
}

// counterNames lists the fencing counters of the lock app.lck in dir.
func counterNames(t *testing.T, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(dirNames(t, dir), func(name string) bool {
		n, ok := strings.CutPrefix(name, "app.lck.fence.")
		return !ok || n == "" || strings.Trim(n, "0123456789") != ""
	})
}

// checkOneCounter checks that the one counter in dir is at want.
func checkOneCounter(t *testing.T, dir string, want uint64) {
	t.Helper()
	if got, want := counterNames(t, dir), []string{"app.lck.fence." + strconv.FormatUint(want, 10)}; !slices.Equal(got, want) {
		t.Errorf("counters = %q; want %q", got, want)
	}
}

// checkIncreasing checks that tokens strictly increase.
func checkIncreasing(t *testing.T, tokens []uint64) {
	t.Helper()
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("tokens %v: %d after %d", tokens, tokens[i], tokens[i-1])
		}
	}
}

// TestFencingPausedTakerStaleListing replays what the simulation found
// (seed 15689): a taker reads no hint and pauses, while its lock is broken
// and another process starts the counter and takes tokens 1 to 3; it then
// resumes with a stale listing that shows no counter. It must not start a
// second counter: every token it is handed is larger than 3, and one
// counter is left.
func TestFencingPausedTakerStaleListing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	other := newLock(t, path, flock.WithFencing())
	var others []uint64
	var stale []string
	paused := false
	f := &fsystest.Faulty{
		OnOpen: func(next func(string) (fsys.File, error), name string) (fsys.File, error) {
			file, err := next(name)
			if name != path+".fence" || !errors.Is(err, fs.ErrNotExist) || paused {
				return file, err
			}
			paused = true
			var lerr error
			if stale, lerr = fsys.OS.ReadDir(dir); lerr != nil {
				t.Fatal(lerr)
			}
			if broke, err := other.Break(true); !broke || err != nil {
				t.Fatalf("Break(true) = %v, %v; want true, nil", broke, err)
			}
			others = takeTokens(t, other, 3)
			return file, err
		},
		OnReadDir: func(next func(string) ([]string, error), name string) ([]string, error) {
			if names := stale; names != nil {
				stale = nil
				return names, nil
			}
			return next(name)
		},
	}
	l := fencedLock(t, path, f)
	token := acquireToken(t, l)
	if !paused {
		t.Fatal("the taker never read the hint as missing")
	}
	checkIncreasing(t, append(others, token))
	checkOneCounter(t, dir, token)
}

// TestFencingNeverReplacesCounter: a move that finds the next value taken
// never replaces it, so a counter left below the top is never moved onto
// it: not the source of a link-and-unlink move that stopped before its
// unlink (the next value is the same file: rename(2) then does nothing and
// reports success), and not a second counter. The hint lags, as the
// stopped taker never wrote it.
func TestFencingNeverReplacesCounter(t *testing.T) {
	tests := []struct {
		name       string
		linkUnlink bool // no RENAME_NOREPLACE, as on NFS
		leave      func(t *testing.T, path string)
	}{
		{"stopped before unlink", false, func(t *testing.T, path string) { mustLink(t, path+".fence.3", path+".fence.2") }},
		{"stopped before unlink, link and unlink", true, func(t *testing.T, path string) { mustLink(t, path+".fence.3", path+".fence.2") }},
		{"second counter", false, func(t *testing.T, path string) { writeFile(t, path+".fence.2", "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			f := &fsystest.Faulty{}
			if tt.linkUnlink {
				f.OnRenameNoReplace = func(_ func(string, string) error, o, n string) error {
					return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
				}
			}
			l := fencedLock(t, path, f)
			tokens := takeTokens(t, l, 3)
			tt.leave(t, path)
			writeFile(t, path+".fence", "2\n")
			tokens = append(tokens, takeTokens(t, l, 2)...)
			checkIncreasing(t, tokens)
			checkOneCounter(t, dir, tokens[len(tokens)-1])
		})
	}
}

// TestFencingListingRemovesCountersBelowTop: a taker that found the
// counter in a listing did not pass the names below it; it removes them,
// so that a hint that lags (a writer that paused before its rename) can
// never lead a later taker to one of them.
func TestFencingListingRemovesCountersBelowTop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path, flock.WithFencing())
	tokens := takeTokens(t, l, 3)
	mustLink(t, path+".fence.3", path+".fence.300")
	writeFile(t, path+".fence", "garbage") // so that the directory is listed
	tokens = append(tokens, takeTokens(t, l, 1)...)
	writeFile(t, path+".fence", "3\n")
	tokens = append(tokens, takeTokens(t, l, 1)...)
	if want := []uint64{1, 2, 3, 301, 302}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %v; want %v", tokens, want)
	}
	checkOneCounter(t, dir, 302)
}

// TestFencingResetPassesOverOldCounter: deleting the hint restarts the
// tokens at 1, as documented; a counter left from before is never moved
// onto or replaced, but passed over when the new one reaches it.
func TestFencingResetPassesOverOldCounter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path, flock.WithFencing())
	takeTokens(t, l, 3)
	mustRemove(t, path+".fence")
	if tokens, want := takeTokens(t, l, 4), []uint64{1, 2, 4, 5}; !slices.Equal(tokens, want) {
		t.Errorf("tokens after the reset = %v; want %v", tokens, want)
	}
	checkOneCounter(t, dir, 5)
}

// TestFencingLostMoveReply: the move of the counter from 2 happened, but
// its reply was lost and the retransmission answered as it would: ENOENT
// for a rename (its source is gone), EEXIST for a link (NFS links by file
// handle). Tokens still strictly increase, skipping a value, and one
// counter is left.
func TestFencingLostMoveReply(t *testing.T) {
	lose := func(errno syscall.Errno) func(func(string, string) error, string, string) error {
		return func(next func(string, string) error, o, n string) error {
			if err := next(o, n); err != nil || !strings.HasSuffix(o, ".fence.2") {
				return err
			}
			return &os.LinkError{Op: "move", Old: o, New: n, Err: errno}
		}
	}
	unsupported := func(_ func(string, string) error, o, n string) error {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
	}
	tests := []struct {
		name string
		f    *fsystest.Faulty
	}{
		{"rename answers ENOENT", &fsystest.Faulty{OnRenameNoReplace: lose(syscall.ENOENT)}},
		{"link answers EEXIST", &fsystest.Faulty{OnRenameNoReplace: unsupported, OnLink: lose(syscall.EEXIST)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := fencedLock(t, filepath.Join(dir, "app.lck"), tt.f)
			tokens := takeTokens(t, l, 5)
			checkIncreasing(t, tokens)
			if want := []uint64{1, 2, 4, 5, 6}; !slices.Equal(tokens, want) {
				t.Errorf("tokens = %v; want %v", tokens, want)
			}
			checkOneCounter(t, dir, tokens[len(tokens)-1])
		})
	}
}

// TestFencingLostStartReply: the link that creates the hint (where there
// is no RENAME_NOREPLACE) happened, but its reply was lost and the
// retransmission answered EEXIST, on a filesystem that reports no file
// identity (as sshfs): the starter still knows it created the hint, and
// starts the counter.
func TestFencingLostStartReply(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := fencedLock(t, path, &fsystest.Faulty{
		FS: fsystest.NoIdentityFS(fsys.OS),
		OnRenameNoReplace: func(_ func(string, string) error, o, n string) error {
			return &os.LinkError{Op: "rename", Old: o, New: n, Err: errors.ErrUnsupported}
		},
		OnLink: func(next func(string, string) error, o, n string) error {
			if err := next(o, n); err != nil || n != path+".fence" {
				return err
			}
			return &os.LinkError{Op: "link", Old: o, New: n, Err: syscall.EEXIST}
		},
	})
	if tokens, want := takeTokens(t, l, 2), []uint64{1, 2}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %v; want %v", tokens, want)
	}
	checkOneCounter(t, dir, 2)
}

// TestFencingStarterStopped: a process that created the hint and stopped
// (crashed, or paused and lost the lock) before creating the counter
// leaves a hint without a counter. Nobody else starts one: that could be
// a second counter once the starter resumes. Acquisitions fail with
// ErrFencing, saying how to recover, and recover once told.
func TestFencingStarterStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	starter := fencedLock(t, path, &fsystest.Faulty{
		OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), name string, data []byte, at time.Time) (fsys.File, error) {
			if name == path+".fence.1" {
				return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EIO}
			}
			return next(name, data, at)
		},
	})
	if err := starter.Acquire(context.Background()); !errors.Is(err, syscall.EIO) {
		t.Fatalf("starter's Acquire = %v; want EIO", err)
	}
	l := newLock(t, path, flock.WithFencing())
	err := l.Acquire(context.Background())
	if want := "delete app.lck.fence to restart tokens at 1"; !errors.Is(err, flock.ErrFencing) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Acquire = %v; want ErrFencing saying %q", err, want)
	}
	if names := counterNames(t, dir); len(names) != 0 {
		t.Errorf("a failed acquisition created counters %q", names)
	}
	mustRemove(t, path+".fence")
	if token := acquireToken(t, l); token != 1 {
		t.Errorf("token after deleting the hint = %d; want 1", token)
	}
}

// roleHintCrasher takes the lock with fencing and dies as it moves the
// fencing hint into place: a crash between writing the hint and renaming
// it.
func roleHintCrasher() int {
	lock := os.Getenv("LOCK")
	crash := func(next func(string, string) error, o, n string) error {
		if n == lock+".fence" {
			os.Exit(exitHintCrash)
		}
		return next(o, n)
	}
	l, err := flock.New(lock, flock.WithFencing(), flock.SimWithFS(&fsystest.Faulty{FS: fsys.OS, OnRename: crash, OnRenameNoReplace: crash}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	fmt.Fprintln(os.Stderr, "Acquire returned:", l.Acquire(context.Background()))
	return exitError
}

// exitHintCrash is roleHintCrasher's exit status when it died where it
// should.
const exitHintCrash = 42

// TestFencingHintTempSweptAfterCrash: the temporary file that a process
// that died between writing and renaming the fencing hint left is removed
// by the sweep, as its claims are.
func TestFencingHintTempSweptAfterCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	cmd := testenv.Child(t, "hintcrasher", "LOCK="+path)
	var exit *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != exitHintCrash {
		t.Fatalf("hintcrasher = %v; want exit status %d", err, exitHintCrash)
	}
	var temps []string
	for _, name := range dirNames(t, dir) {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && strings.HasPrefix(string(b), "1\n") {
			temps = append(temps, name)
		}
	}
	if len(temps) != 1 {
		t.Fatalf("after the crash the directory holds %q; want one temporary hint", dirNames(t, dir))
	}
	l := newLock(t, path, flock.WithFencing(), flock.WithDeadOwnerBreak())
	if token := acquireToken(t, l); token != 1 {
		t.Errorf("token = %d; want 1", token)
	}
	want := []string{"app.lck", "app.lck.fence", "app.lck.fence.1", filepath.Base(l.ClaimPath())}
	slices.Sort(want)
	if names := dirNames(t, dir); !slices.Equal(names, want) {
		t.Errorf("after the next acquisition the directory holds %q; want %q (the crashed process's temporary hint %s swept)", names, want, temps[0])
	}
}

// TestFencingHintTempIsClaimShaped: the hint is written through a name
// shaped like a claim of this process, which the sweep of dead processes'
// files recognises, and drawn from the Lock's source of randomness, so
// that the simulation replays it.
func TestFencingHintTempIsClaimShaped(t *testing.T) {
	tempName := func() string {
		var temps []string
		record := func(next func(string, string) error, o, n string) error {
			if strings.HasSuffix(n, ".fence") {
				temps = append(temps, filepath.Base(o))
			}
			return next(o, n)
		}
		next := uint64(0)
		l := fencedLock(t, filepath.Join(t.TempDir(), "app.lck"),
			&fsystest.Faulty{OnRename: record, OnRenameNoReplace: record},
			flock.SimWithRandom(func() uint64 { next += 2; return next }))
		takeTokens(t, l, 2)
		if len(temps) != 2 {
			t.Fatalf("the hint was moved into place from %q; want two names", temps)
		}
		for _, name := range temps {
			d, ok := claim.Parse([]byte(name), "|")
			if !claim.IsClaimOf(name, "app.lck", "|") || !ok || d.PID != os.Getpid() {
				t.Errorf("hint written through %q, which is not a claim name of this process", name)
			}
		}
		return strings.Join(temps, " ")
	}
	if a, b := tempName(), tempName(); a != b {
		t.Errorf("with the same random source, the hint's temporary names were %q, then %q", a, b)
	}
}

// TestFencingRefusesIrregularCounter: something other than a regular file
// named like the counter, whether found from the hint or in a listing, is
// never moved: the acquisition fails with ErrFencing naming it.
func TestFencingRefusesIrregularCounter(t *testing.T) {
	for _, kind := range []string{"symlink", "directory"} {
		for _, listed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s listed=%v", kind, listed), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.lck")
				l := newLock(t, path, flock.WithFencing())
				takeTokens(t, l, 3)
				mustRemove(t, path+".fence.3")
				planted := path + ".fence.3"
				if listed {
					planted = path + ".fence.300"
				}
				if kind == "symlink" {
					writeFile(t, filepath.Join(dir, "outside"), "")
					mustSymlink(t, filepath.Join(dir, "outside"), planted)
				} else {
					mustMkdir(t, planted)
				}
				err := l.Acquire(context.Background())
				if want := filepath.Base(planted) + ": flock: fencing counter unusable: a " + kind; !errors.Is(err, flock.ErrFencing) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Acquire = %v; want ErrFencing saying %q", err, want)
				}
				if fi, err := os.Lstat(planted); err != nil || fi.Mode().IsRegular() {
					t.Errorf("the planted %s was moved or replaced: Lstat = %v, %v", kind, fi, err)
				}
			})
		}
	}
}

// TestFencingJammedCounterSaysHowToReset: a counter at the largest uint64
// fails with an error that says how to restart the tokens, and doing what
// it says works.
func TestFencingJammedCounterSaysHowToReset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.lck")
	l := newLock(t, path, flock.WithFencing())
	takeTokens(t, l, 1)
	mustRename(t, path+".fence.1", path+".fence.18446744073709551615")
	writeFile(t, path+".fence", "18446744073709551615\n")
	err := l.Acquire(context.Background())
	want := "delete app.lck.fence and app.lck.fence.18446744073709551615"
	if !errors.Is(err, flock.ErrFencing) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Acquire = %v; want ErrFencing saying %q", err, want)
	}
	mustRemove(t, path+".fence")
	mustRemove(t, path+".fence.18446744073709551615")
	if token := acquireToken(t, l); token != 1 {
		t.Errorf("token after the reset = %d; want 1", token)
	}
}

// TestFencingListingIgnoresCase: a case-insensitive filesystem (SMB, APFS)
// lists the counter as it was last spelled, which may be another spelling
// of the lock's name; the listing must still find it, and a listing with
// counters under two spellings is refused. This filesystem is
// case-sensitive, so a listing is rewritten to the other spelling.
func TestFencingListingIgnoresCase(t *testing.T) {
	respell := func(next func(string) ([]string, error), dir string) ([]string, error) {
		names, err := next(dir)
		for i, name := range names {
			if rest, ok := strings.CutPrefix(name, "App.lck.fence."); ok {
				names[i] = "APP.LCK.fence." + rest
			}
		}
		return names, err
	}
	t.Run("other spelling", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "App.lck")
		l := fencedLock(t, path, &fsystest.Faulty{OnReadDir: respell})
		takeTokens(t, l, 3)
		// The hint lags by more than the probes: the directory is listed.
		mustRename(t, path+".fence.3", path+".fence.300")
		writeFile(t, path+".fence", "3\n")
		if token := acquireToken(t, l); token != 301 {
			t.Errorf("token = %d; want 301", token)
		}
	})
	t.Run("two spellings", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "App.lck")
		l := fencedLock(t, path, &fsystest.Faulty{})
		takeTokens(t, l, 3)
		mustRename(t, path+".fence.3", path+".fence.300")
		writeFile(t, path+".fence", "3\n")
		writeFile(t, filepath.Join(dir, "app.LCK.fence.7"), "")
		err := l.Acquire(context.Background())
		if !errors.Is(err, flock.ErrFencing) || !strings.Contains(err.Error(), "two spellings") {
			t.Fatalf("Acquire = %v; want ErrFencing for two spellings", err)
		}
	})
}

func writeFile(t *testing.T, path, contents string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, oldname, newname string) {
	t.Helper()
	if err := os.Rename(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t *testing.T, oldname, newname string) {
	t.Helper()
	if err := os.Link(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
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
	if testing.Short() {
		t.Skip("-short: 12 processes of 128 rounds each take about 12 s; it runs without -short, as under .ci/test")
	}
	storm(t)
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

// TestFencingStarterProvenDead: a process that created the hint and died
// before it created counter 1 handed out no token. A process of the same
// host and pid namespace, which can prove it dead, starts the counter in
// its place; one that cannot (the starter ran elsewhere, or still runs)
// fails with ErrFencing, as before.
func TestFencingStarterProvenDead(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name    string
		starter func(lock string) string // the hint's creator's temporary name
		want    error
	}{
		{"dead here", func(lock string) string {
			return claim.Name(lock, "|", host, deadPID(t), 5, fsys.OS.Namespace())
		}, nil},
		{"alive here", func(lock string) string {
			return claim.Name(lock, "|", host, os.Getppid(), 5, fsys.OS.Namespace())
		}, flock.ErrFencing},
		{"dead elsewhere", func(lock string) string {
			return claim.Name(lock, "|", "elsewhere", deadPID(t), 5, fsys.OS.Namespace())
		}, flock.ErrFencing},
		{"dead in another pid namespace", func(lock string) string {
			return claim.Name(lock, "|", host, deadPID(t), 5, fsys.OS.Namespace()%claim.MaxTag+1)
		}, flock.ErrFencing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.lck")
			starter := filepath.Base(tt.starter(path))
			if err := os.WriteFile(path+".fence", []byte("1\n"+starter+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			l := newLock(t, path, flock.WithFencing(), flock.WithTimeout(time.Second))
			err := l.Acquire(context.Background())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Acquire = %v; want the counter started in the dead starter's place", err)
				}
				if token, ok := l.Token(); token != 1 || !ok {
					t.Errorf("Token() = %d, %v; want 1, true", token, ok)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Acquire = %v; want %v", err, tt.want)
			}
		})
	}
}
