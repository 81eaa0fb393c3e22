//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// binary is nfsflock, built once by TestMain; the tests run it as users do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nfsflock-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "nfsflock")
	// The tests mostly wait for the processes they start: run more of
	// them at once than there are CPUs, unless told otherwise, or the race
	// detector makes each process keep a CPU busy.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet && !raceEnabled {
		flag.Set("test.parallel", strconv.Itoa(max(8, 2*runtime.GOMAXPROCS(0))))
	}
	// The tag builds in the fault seams of hook_on.go, idle unless a
	// test's environment sets them.
	args := []string{"build", "-tags", "nfsflocktest", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
		// The race runtime lingers a second at exit by default; a race
		// found still makes the binary exit 66, which no test expects.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=20"))
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A proc is an nfsflock process started by a test.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error // set before done closes
}

// start starts nfsflock with args in dir. Its standard input is a pipe that
// proc.closeStdin closes. The test's cleanup ends it if the test has not.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startEnv(t, dir, nil, args...)
}

// startHeld is start, with nfsflock kept for delay between the start of
// its command's gate and telling the watchdog its group (the fault seam
// NFSFLOCK_TEST_GUARD_DELAY): the command waits that long to run.
func startHeld(t *testing.T, dir, delay string, args ...string) *proc {
	t.Helper()
	return startEnv(t, dir, append(os.Environ(), "NFSFLOCK_TEST_GUARD_DELAY="+delay), args...)
}

// startEnv is start with the environment env; nil is the test's own.
func startEnv(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = env
	// A command that outlives nfsflock keeps its output open; Wait would
	// wait for it.
	p.cmd.WaitDelay = 10 * time.Second
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
			return
		default:
		}
		// SIGTERM first: nfsflock passes it on to its command's group.
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) closeStdin() { p.stdin.Close() }

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to end and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("nfsflock %q has not ended", p.cmd.Args[1:])
	}
	return exitStatus(p.t, p.err)
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("nfsflock was killed by %v", ws.Signal())
	}
	return ee.ExitCode()
}

// run runs nfsflock with args in dir and returns its exit status,
// standard output and standard error.
func run(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	return runEnv(t, dir, nil, args...)
}

// runEnv is run with the environment env; nil is the test's own.
func runEnv(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	p := startEnv(t, dir, env, args...)
	p.closeStdin()
	status := p.wait()
	return status, p.stdout.String(), p.stderr.String()
}

// waitFor polls cond until it holds; it fails the test if that takes
// unreasonably long (which is a hang, not slowness).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// hold starts an nfsflock that holds lock in dir until closeStdin, and
// returns once its command runs.
func hold(t *testing.T, dir, lock string, flags ...string) *proc {
	t.Helper()
	ready := filepath.Join(dir, "ready-"+strconv.Itoa(len(t.Name()))+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	args := append(append([]string(nil), flags...), lock, "--", "sh", "-c", `touch "$0"; exec cat`, ready)
	p := start(t, dir, args...)
	waitFor(t, "the holder's command to start", func() bool { return exists(ready) })
	return p
}

// status runs nfsflock status --json, and checks that its exit status is
// the one for the state it reports.
func status(t *testing.T, dir string, args ...string) report {
	t.Helper()
	code, out, errOut := run(t, dir, append([]string{"status", "--json"}, args...)...)
	var r report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("nfsflock status --json %q = %d: %v in %q, stderr %q", args, code, err, out, errOut)
	}
	if want := r.exitStatus(); code != want {
		t.Fatalf("nfsflock status --json %q = %d, reporting %s; want %d", args, code, r.Status, want)
	}
	return r
}

// leftovers lists the files in dir other than those named in keep and the
// ready files of hold.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) && !strings.HasPrefix(e.Name(), "ready-") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCommandStatus(t *testing.T) {
	t.Parallel()
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"success", []string{"true"}, 0},
		{"failure", []string{"sh", "-c", "exit 3"}, 3},
		{"255", []string{"sh", "-c", "exit 255"}, 255},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"not found", []string{"nfsflock-test-no-such-command"}, 127},
		{"not executable", []string{notExec}, 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"L", "--"}, tt.argv...)
			if got, _, stderr := run(t, dir, args...); got != tt.want {
				t.Errorf("nfsflock %q = %d, stderr %q; want %d", args, got, stderr, tt.want)
			}
			if left := leftovers(t, dir); len(left) > 0 {
				t.Errorf("files left behind: %q", left)
			}
		})
	}
}

// A command found through a relative entry of PATH ("." or an empty one)
// is refused, as os/exec refuses it, with exit status 127 and a sentence
// that says how to run it on purpose; given as ./prog it runs.
func TestRelativePathRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\ntouch ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{".:" + os.Getenv("PATH"), ":" + os.Getenv("PATH"), os.Getenv("PATH") + ":"} {
		env := append(withoutEnv(os.Environ(), "PATH"), "PATH="+path)
		code, _, stderr := runEnv(t, dir, env, "L", "prog")
		if code != exitNotFound || !strings.Contains(stderr, "./prog") {
			t.Errorf("PATH=%q nfsflock L prog = %d, stderr %q; want %d and a hint to run ./prog", path, code, stderr, exitNotFound)
		}
		if exists(filepath.Join(dir, "ran")) {
			t.Fatalf("PATH=%q nfsflock L prog ran ./prog", path)
		}
		if code, _, stderr := runEnv(t, dir, env, "L", "./prog"); code != 0 || !exists(filepath.Join(dir, "ran")) {
			t.Errorf("PATH=%q nfsflock L ./prog = %d, stderr %q; want 0 and ./prog run", path, code, stderr)
		}
		if err := os.Remove(filepath.Join(dir, "ran")); err != nil {
			t.Fatal(err)
		}
	}
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// The -- is optional, and the lock is held while the command runs.
func TestRunHoldsLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, stderr := run(t, dir, "L", "sh", "-c", `"$0" status --json L`, binary)
	if code != 0 {
		t.Fatalf("nfsflock L sh -c 'nfsflock status --json L' = %d, stderr %q; want 0", code, stderr)
	}
	var r report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json inside: %v in %q", err, out)
	}
	if !r.Locked || r.Holder == nil {
		t.Errorf("status inside the command = %+v; want locked with a holder", r)
	}
}

// TestFencing: with --fencing each run hands its command a larger token
// than the run before; without it there is none.
func TestFencing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	last := uint64(0)
	for i := range 3 {
		code, out, stderr := run(t, dir, "--fencing", "L", "sh", "-c", `echo "$NFSFLOCK_TOKEN"`)
		token, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if code != 0 || err != nil || token <= last {
			t.Fatalf("run %d: nfsflock --fencing = %d, token %q (%v), stderr %q; want a token above %d", i, code, out, err, stderr, last)
		}
		last = token
	}
	code, out, _ := run(t, dir, "L", "sh", "-c", `echo "${NFSFLOCK_TOKEN-unset}"`)
	if code != 0 || strings.TrimSpace(out) != "unset" {
		t.Errorf("without --fencing the command sees NFSFLOCK_TOKEN=%q", out)
	}
}

// The command's environment holds exactly one NFSFLOCK_TOKEN, the lock's,
// with --fencing, and none without it, whatever nfsflock inherited.
func TestFencingTokenEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := append(withoutEnv(os.Environ(), "NFSFLOCK_TOKEN"), "NFSFLOCK_TOKEN=999", "NFSFLOCK_TOKEN=998")
	tokens := func(args ...string) []string {
		t.Helper()
		code, out, stderr := runEnv(t, dir, env, append(args, "L", "env")...)
		if code != 0 {
			t.Fatalf("nfsflock %q L env = %d, stderr %q; want 0", args, code, stderr)
		}
		var found []string
		for line := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "NFSFLOCK_TOKEN="); ok {
				found = append(found, v)
			}
		}
		return found
	}
	if got := tokens("--fencing"); len(got) != 1 || got[0] != "1" {
		t.Errorf("nfsflock --fencing L env, the first run, with NFSFLOCK_TOKEN=999 inherited: the command sees NFSFLOCK_TOKEN %q; want [1]", got)
	}
	if got := tokens(); len(got) != 0 {
		t.Errorf("nfsflock L env with NFSFLOCK_TOKEN=999 inherited: the command sees NFSFLOCK_TOKEN %q; want none", got)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{},
		{"-s", "L", "true"},
		{"--shared", "L", "true"},
		{"-u", "9"},
		{"9"},
		{"L", "-c"},
		{"L", "-c", "true", "x"},
		{"-c", "true", "L"},
		{"L"},
		{"L", "--"},
		{"-E", "256", "L", "true"},
		{"-E", "x", "L", "true"},
		{"-l", "0", "L", "true"},
		{"-w", "-1", "L", "true"},
		{"-w", "soon", "L", "true"},
		{"-k", "1parsec", "L", "true"},
		{"", "true"},
		{"a|b", "true"},
		{"run"},
		{"status"},
		{"status", "a", "b"},
		{"status", "--nope", "L"},
		{"break"},
		{"break", "--force", "a", "b"},
		{"break", "--clock-slop", "x", "L"},
		{"L", "-n", "true"},
		{"status", "L", "--json"},
		{"break", "L", "--force"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, _, stderr := run(t, dir, args...)
			if code != exitUsage {
				t.Errorf("nfsflock %q = %d, stderr %q; want %d", args, code, stderr, exitUsage)
			}
			if !strings.Contains(stderr, "nfsflock -h") {
				t.Errorf("nfsflock %q: stderr %q does not point to nfsflock -h", args, stderr)
			}
			if left := leftovers(t, dir); len(left) > 0 {
				t.Errorf("files left behind: %q", left)
			}
		})
	}
}

// Durations whose arithmetic would overflow are usage errors that name
// the largest allowed value; that value itself is taken.
func TestDurationBound(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{"-l", "8e9", "L", "true"},
		{"--lifetime", "1e300", "L", "true"},
		{"-w", "876001h", "L", "true"},
		{"--clock-slop", "+Inf", "L", "true"},
		{"-k", "9e9", "L", "true"},
		{"status", "--clock-slop", "8e9", "L"},
		{"break", "--clock-slop", "2562047h", "L"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := run(t, t.TempDir(), args...)
			if code != exitUsage || !strings.Contains(stderr, "at most 876000h (100 years)") {
				t.Errorf("nfsflock %q = %d, stderr %q; want %d and the largest allowed, 876000h", args, code, stderr, exitUsage)
			}
		})
	}
	args := []string{"-l", "876000h", "--clock-slop", "876000h", "-w", "876000h", "L", "true"}
	if code, _, stderr := run(t, t.TempDir(), args...); code != 0 {
		t.Errorf("nfsflock %q = %d, stderr %q; want 0", args, code, stderr)
	}
}

// Something other than a regular file where the lock file belongs is an
// error, and is left as it is.
func TestNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "link", "fifo"} {
		for _, args := range [][]string{{name, "true"}, {"status", name}, {"break", "--force", name}} {
			code, _, stderr := run(t, dir, args...)
			if code != exitFailed || !strings.Contains(stderr, "not a regular file") {
				t.Errorf("nfsflock %q = %d, stderr %q; want %d, not a regular file", args, code, stderr, exitFailed)
			}
		}
	}
	if left := leftovers(t, dir, "d", "link", "fifo"); len(left) > 0 {
		t.Errorf("files left behind: %q", left)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"status", "-h"}, {"break", "--help"}, {"run", "-h"}} {
		code, out, _ := run(t, t.TempDir(), args...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "Exit status:") {
			t.Errorf("nfsflock %q = %d with output %.40q...; want 0 and the usage", args, code, out)
		}
	}
}

// All after LOCKFILE is the command's: a flag there is a usage error, not
// a command run, and after -- a command that begins with a dash runs.
func TestFlagsBeforeLockfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "-x"), []byte("#!/bin/sh\necho \"$@\" >> ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(withoutEnv(os.Environ(), "PATH"), "PATH="+bin+string(filepath.ListSeparator)+os.Getenv("PATH"))
	if code, _, stderr := runEnv(t, dir, env, "L", "-x", "a"); code != exitUsage || !strings.Contains(stderr, "flags come before LOCKFILE") {
		t.Errorf("nfsflock L -x a = %d, stderr %q; want %d, flags come before LOCKFILE", code, stderr, exitUsage)
	}
	if exists(filepath.Join(dir, "ran")) {
		t.Fatal("nfsflock L -x a ran -x")
	}
	for _, args := range [][]string{{"L", "--", "-x", "a", "-n"}, {"--", "L", "-x", "b", "--"}} {
		if code, _, stderr := runEnv(t, dir, env, args...); code != 0 {
			t.Errorf("nfsflock %q = %d, stderr %q; want 0", args, code, stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ran")); err != nil || string(b) != "a -n\nb --\n" {
		t.Errorf("-x was run with %q, %v; want %q", b, err, "a -n\nb --\n")
	}
}

// A first argument that is a verb is the verb; ./status names a file.
func TestVerbOrFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"./status", "--", "test", "-f", "status"}
	if code, _, stderr := run(t, dir, args...); code != 0 {
		t.Fatalf("nfsflock %q = %d, stderr %q; want 0 (the lock file named status exists)", args, code, stderr)
	}
	if r := status(t, dir, "./status"); r.State != "unlocked" || filepath.Base(r.Path) != "status" {
		t.Errorf("status ./status = %+v; want unlocked, path ending in /status", r)
	}
	args = []string{"run", "status", "true"}
	if code, _, stderr := run(t, dir, args...); code != 0 {
		t.Fatalf("nfsflock %q = %d, stderr %q; want 0", args, code, stderr)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holder := hold(t, dir, "L")
	tests := []struct {
		args  []string
		want  int
		quiet bool
	}{
		{[]string{"-n", "L", "true"}, 75, false},
		{[]string{"--nonblock", "-E", "9", "L", "true"}, 9, false},
		{[]string{"-w", "0.2", "L", "true"}, 75, false},
		{[]string{"--timeout", "200ms", "--conflict-exit-code", "0", "L", "true"}, 0, false},
		{[]string{"-w", "0", "-E", "3", "L", "true"}, 3, false},
		{[]string{"-q", "-n", "L", "true"}, 75, true},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, dir, tt.args...)
		if code != tt.want {
			t.Errorf("nfsflock %q with the lock held = %d, stderr %q; want %d", tt.args, code, stderr, tt.want)
		}
		switch want := fmt.Sprintf("held by pid %d", holder.pid()); {
		case tt.quiet && stderr != "":
			t.Errorf("nfsflock %q: stderr %q; want nothing", tt.args, stderr)
		case !tt.quiet && !strings.Contains(stderr, want):
			t.Errorf("nfsflock %q: stderr %q; want it to say %q", tt.args, stderr, want)
		}
	}
	holder.closeStdin()
	if code := holder.wait(); code != 0 {
		t.Fatalf("holder = %d, stderr %q; want 0", code, holder.stderr.String())
	}
	if code, _, stderr := run(t, dir, "-n", "L", "true"); code != 0 {
		t.Errorf("nfsflock -n L true after the holder ended = %d, stderr %q; want 0", code, stderr)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if r := status(t, dir, "L"); r.Status != "free" || r.State != "unlocked" || r.Locked || r.Holder != nil || !r.Expires.IsZero() {
		t.Errorf("status of no lock = %+v; want free, unlocked, no holder, no expiry", r)
	}
	code, out, _ := run(t, dir, "status", "L")
	if want := "status:  free: there is no lock file\n"; code != statusFree || !strings.Contains(out, want) {
		t.Errorf("status L of no lock = %d, %q; want %d and %q", code, out, statusFree, want)
	}
	holder := hold(t, dir, "L")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "L")
	r := status(t, dir, "L")
	want := holderJSON{Hostname: host, PID: holder.pid(), LockFile: abs}
	if r.Status != "held" || r.State != "unknown" || !r.Locked || r.Path != abs || r.Expires.IsZero() || r.Expired || r.Breakable ||
		!r.Local || !r.Alive || r.Ours || r.At.IsZero() || !strings.HasPrefix(r.Claim, abs+"|"+host+"|"+strconv.Itoa(holder.pid())+"|") {
		t.Errorf("status of a held lock = %+v; want held, unknown, locked, path %s, an expiry, not expired, local, alive, its claim", r, abs)
	}
	if r.Holder == nil || holderJSON(*r.Holder) != want {
		t.Errorf("status holder = %+v; want %+v", r.Holder, want)
	}
	code, out, _ = run(t, dir, "status", "L")
	for _, line := range []string{
		"lock:    " + abs + "\n",
		fmt.Sprintf("status:  held by pid %d on host %s, a running process of this host\n", holder.pid(), host),
		"expiry:  ",
		" (expires in ",
		"state:   unknown (flufl.lock's name)\n",
	} {
		if code != statusHeld || !strings.Contains(out, line) {
			t.Errorf("status L = %d, %q; want %d and %q", code, out, statusHeld, line)
		}
	}
	if code, out, stderr := run(t, dir, "status", "-q", "L"); code != statusHeld || out != "" || stderr != "" {
		t.Errorf("status -q L of a held lock = %d, %q, stderr %q; want %d and nothing printed", code, out, stderr, statusHeld)
	}
}

// writeLock writes a lock file at dir/L with contents, expiring at
// expires, as another process would.
func writeLock(t *testing.T, dir, contents string, expires time.Time) {
	t.Helper()
	lock := filepath.Join(dir, "L")
	if err := os.WriteFile(lock+".new", []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lock+".new", expires, expires); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(lock+".new", lock); err != nil {
		t.Fatal(err)
	}
}

// deadPID returns the pid of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// status exits 0 held, 1 free, 2 expired, 3 stale, with -q too, and says
// each in words; a lock within the clock slop says when it is breakable.
func TestStatusStates(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pid := deadPID(t)
	tests := []struct {
		name     string
		contents string // %s is the lock path
		expires  time.Duration
		code     int
		words    []string
	}{
		{"free", "", 0, statusFree, []string{"status:  free: there is no lock file"}},
		{"held elsewhere", "%s|other.example|4242|1", time.Hour, statusHeld,
			[]string{"status:  held by pid 4242 on host other.example\n", "(expires in 60 min)"}},
		{"expired, within the slop", "%s|other.example|4242|1", -1200 * time.Millisecond, statusExpired,
			[]string{"status:  expired, held by pid 4242 on host other.example\n", " s ago; breakable in ", " s, after the clock slop)\n"}},
		{"expired, breakable", "%s|other.example|4242|1", -time.Minute, statusExpired,
			[]string{"status:  expired, held by pid 4242 on host other.example\n", " s ago; breakable)\n"}},
		{"stale", "%s|" + host + "|" + strconv.Itoa(pid) + "|1", time.Hour, statusStale,
			[]string{fmt.Sprintf("status:  stale, held by pid %d on host %s, this host, where no process has pid %d; a process in another pid namespace (a container)", pid, host, pid), "state:   stale"}},
		{"unparsable", "not a claim", time.Hour, statusHeld,
			[]string{"status:  held by an unnamed holder (the lock file's contents are not a claim)\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.contents != "" {
				writeLock(t, dir, strings.ReplaceAll(tt.contents, "%s", filepath.Join(dir, "L")), time.Now().Add(tt.expires))
			}
			code, out, stderr := run(t, dir, "status", "L")
			if code != tt.code {
				t.Errorf("status L = %d, %q, stderr %q; want %d", code, out, stderr, tt.code)
			}
			if tt.code == statusExpired {
				checkSlopWords(t, "status L", out)
			}
			for _, w := range tt.words {
				if !strings.Contains(out, w) {
					t.Errorf("status L printed %q; want it to say %q", out, w)
				}
			}
			if code, out, stderr := run(t, dir, "status", "--quiet", "L"); code != tt.code || out != "" || stderr != "" {
				t.Errorf("status --quiet L = %d, %q, stderr %q; want %d and nothing printed", code, out, stderr, tt.code)
			}
			word := map[int]string{statusHeld: "held", statusFree: "free", statusExpired: "expired", statusStale: "stale"}[tt.code]
			if r := status(t, dir, "L"); r.Status != word {
				t.Errorf("status --json L = %+v; want status %q", r, word)
			}
		})
	}
}

// hostileHost is a hostname that a lock file may claim: it clears the
// screen (ESC [2J, and the 8-bit CSI U+009B) and forges a line of its own.
const hostileHost = "evil\x1b[2J\u009b2J\nfake: nfsflock released the lock"

// writeHostileLock writes a lock file at dir/L whose holder is hostileHost,
// expiring at expires.
func writeHostileLock(t *testing.T, dir string, expires time.Time) {
	t.Helper()
	lock := filepath.Join(dir, "L")
	contents := lock + "|" + hostileHost + "|4242|1"
	if err := os.WriteFile(lock+".new", []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lock+".new", expires, expires); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(lock+".new", lock); err != nil {
		t.Fatal(err)
	}
}

// checkEscaped fails t if out, what nfsflock printed, holds a control
// character of hostileHost or a line that it forged.
func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	if strings.ContainsAny(out, "\x1b\u009b") || strings.Contains(out, "\nfake") {
		t.Errorf("%s printed the lock file's text raw: %q", what, out)
	}
}

// Text from a lock file reaches the terminal escaped, on every path that
// prints it: status, -n, break, and the message of a lost lock.
func TestHostileLockFile(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(time.Hour)
	t.Run("status", func(t *testing.T) {
		dir := t.TempDir()
		writeHostileLock(t, dir, future)
		code, out, stderr := run(t, dir, "status", "L")
		if code != statusHeld || !strings.Contains(out, "status:  held by pid 4242 on host ") {
			t.Errorf("status L = %d, %q, stderr %q; want %d and a status line", code, out, stderr, statusHeld)
		}
		checkEscaped(t, "status L", out+stderr)
	})
	t.Run("status --json", func(t *testing.T) {
		dir := t.TempDir()
		writeHostileLock(t, dir, future)
		code, out, stderr := run(t, dir, "status", "--json", "L")
		var r report
		if err := json.Unmarshal([]byte(out), &r); code != statusHeld || err != nil || r.Holder == nil || r.Holder.Hostname != hostileHost {
			t.Errorf("status --json L = %d, %q (%v), stderr %q; want 0 and the hostname %q", code, out, err, stderr, hostileHost)
		}
		checkEscaped(t, "status --json L", out+stderr)
	})
	t.Run("-n", func(t *testing.T) {
		dir := t.TempDir()
		writeHostileLock(t, dir, future)
		code, _, stderr := run(t, dir, "-n", "L", "true")
		if code != exitUnavailable || !strings.Contains(stderr, "held by pid 4242") {
			t.Errorf("nfsflock -n L true = %d, stderr %q; want %d, held by pid 4242", code, stderr, exitUnavailable)
		}
		checkEscaped(t, "nfsflock -n L true", stderr)
	})
	t.Run("break refused", func(t *testing.T) {
		dir := t.TempDir()
		writeHostileLock(t, dir, future)
		code, out, stderr := run(t, dir, "break", "L")
		if code != exitUnavailable {
			t.Errorf("break L = %d, stderr %q; want %d", code, stderr, exitUnavailable)
		}
		checkEscaped(t, "break L", out+stderr)
	})
	t.Run("break", func(t *testing.T) {
		dir := t.TempDir()
		writeHostileLock(t, dir, time.Now().Add(-time.Hour))
		code, out, stderr := run(t, dir, "break", "--clock-slop", "0", "L")
		if code != 0 || !strings.Contains(out, "broke the lock of pid 4242") {
			t.Errorf("break --clock-slop 0 L = %d, %q, stderr %q; want 0, broke", code, out, stderr)
		}
		checkEscaped(t, "break --clock-slop 0 L", out+stderr)
	})
	t.Run("lost", func(t *testing.T) {
		dir := t.TempDir()
		holder := start(t, dir, "-l", "0.6", "-k", "0.2", "L", "--", "sh", "-c", `touch ready; exec sleep 600`)
		waitFor(t, "the holder's command to start", func() bool { return exists(filepath.Join(dir, "ready")) })
		writeHostileLock(t, dir, future)
		if code := holder.wait(); code != exitLost {
			t.Errorf("holder whose lock file was replaced = %d, stderr %q; want %d", code, holder.stderr.String(), exitLost)
		}
		checkEscaped(t, "the holder whose lock was lost", holder.stderr.String())
	})
}

type holderJSON struct {
	Hostname string
	PID      int
	LockFile string
}

func TestBreak(t *testing.T) {
	t.Parallel()
	t.Run("unlocked", func(t *testing.T) {
		dir := t.TempDir()
		if code, out, stderr := run(t, dir, "break", "L"); code != 0 || !strings.Contains(out, "not locked") {
			t.Errorf("break L = %d, %q, stderr %q; want 0, not locked", code, out, stderr)
		}
	})
	t.Run("refuses an unexpired lock", func(t *testing.T) {
		dir := t.TempDir()
		holder := hold(t, dir, "L")
		code, _, stderr := run(t, dir, "break", "L")
		want := fmt.Sprintf("nfsflock: L: not breaking the lock of pid %d on host ", holder.pid())
		if code != exitUnavailable || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, ": it expires in ") {
			t.Errorf("break L of a held lock = %d, stderr %q; want %d, %q... it expires in", code, stderr, exitUnavailable, want)
		}
		if r := status(t, dir, "L"); r.Holder == nil || r.Holder.PID != holder.pid() {
			t.Errorf("after a refused break, status = %+v; want held by %d", r, holder.pid())
		}
		holder.closeStdin()
		if code := holder.wait(); code != 0 {
			t.Errorf("holder = %d, stderr %q; want 0: its lock was not lost", code, holder.stderr.String())
		}
	})
	t.Run("force", func(t *testing.T) {
		dir := t.TempDir()
		holder := hold(t, dir, "L", "-l", "0.6", "-k", "0.1")
		if code, out, stderr := run(t, dir, "break", "--force", "L"); code != 0 || !strings.Contains(out, "broke") {
			t.Errorf("break --force L = %d, %q, stderr %q; want 0, broke", code, out, stderr)
		}
		if code := holder.wait(); code != exitLost {
			t.Errorf("holder whose lock was broken by force = %d, stderr %q; want %d", code, holder.stderr.String(), exitLost)
		}
		if left := leftovers(t, dir); len(left) > 0 {
			t.Errorf("files left behind: %q", left)
		}
	})
}

// A holder that is paused past its lifetime has its lock broken, and when
// it resumes it stops its command and exits 70.
func TestLostWhileStopped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holder := start(t, dir, "-l", "0.3", "L", "--", "sh", "-c", `touch ready; exec sleep 600`)
	waitFor(t, "the holder's command to start", func() bool { return exists(filepath.Join(dir, "ready")) })
	holder.signal(syscall.SIGSTOP)
	waitFor(t, "the lock to expire", func() bool { return status(t, dir, "--clock-slop", "0", "L").Breakable })
	if code, out, stderr := run(t, dir, "break", "--clock-slop", "0", "L"); code != 0 || !strings.Contains(out, "broke") {
		t.Fatalf("break --clock-slop 0 L of an expired lock = %d, %q, stderr %q; want 0, broke", code, out, stderr)
	}
	// A waiter takes the lock while the holder is stopped.
	if code, _, stderr := run(t, dir, "-n", "L", "true"); code != 0 {
		t.Fatalf("nfsflock -n L true after the break = %d, stderr %q; want 0", code, stderr)
	}
	holder.signal(syscall.SIGCONT)
	if code := holder.wait(); code != exitLost {
		t.Errorf("resumed holder = %d, stderr %q; want %d", code, holder.stderr.String(), exitLost)
	}
	if !strings.Contains(holder.stderr.String(), "lock lost") {
		t.Errorf("resumed holder's stderr %q does not say the lock was lost", holder.stderr.String())
	}
}

// A command that stays stopped for longer than the lock's lifetime is
// ended as for a lost lock, without running again, and the lock is
// released: it is not kept refreshed for as long as the command stays
// stopped. One continued sooner runs on, past the lifetime too.
func TestStoppedCommand(t *testing.T) {
	t.Parallel()
	t.Run("stays stopped", func(t *testing.T) {
		dir := t.TempDir()
		p := start(t, dir, "-l", "0.5", "-k", "0.2", "L", "--", "sh", "-c", `kill -STOP $$; touch resumed`)
		if code := p.wait(); code != exitLost || !strings.Contains(p.stderr.String(), "stopped") {
			t.Errorf("nfsflock -l 0.5 L with a command that stops = %d, stderr %q; want %d, stopped", code, p.stderr.String(), exitLost)
		}
		if exists(filepath.Join(dir, "resumed")) {
			t.Error("the stopped command ran again")
		}
		if r := status(t, dir, "L"); r.Locked {
			t.Errorf("status after nfsflock ended = %+v; want unlocked", r)
		}
	})
	t.Run("continued", func(t *testing.T) {
		dir := t.TempDir()
		p := start(t, dir, "-l", "2", "L", "--", "sh", "-c", `echo $$ > pid; kill -STOP $$; touch resumed; sleep 2.5`)
		pid := readInt(t, filepath.Join(dir, "pid"))
		waitFor(t, "the command to be continued", func() bool {
			syscall.Kill(pid, syscall.SIGCONT)
			return exists(filepath.Join(dir, "resumed"))
		})
		if code := p.wait(); code != 0 {
			t.Errorf("nfsflock -l 2 L with a command stopped a moment = %d, stderr %q; want 0", code, p.stderr.String())
		}
	})
}

// A holder whose lock file is replaced or removed stops its command and
// exits 70, leaving the new lock file alone; a command that ignores
// SIGTERM gets SIGKILL after the grace period, with all its group.
func TestLostLockFile(t *testing.T) {
	t.Parallel()
	replace := func(t *testing.T, lock string) {
		tmp := lock + ".new"
		if err := os.WriteFile(tmp, []byte("someone else"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, lock); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		ignore string // shell trap for SIGTERM
		change func(t *testing.T, lock string)
	}{
		{"replaced", "", replace},
		{"removed", "", func(t *testing.T, lock string) { os.Remove(lock) }},
		{"replaced, TERM ignored", `trap "" TERM;`, replace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			script := tt.ignore + ` echo $$ > pgid; sleep 600 & echo $! > child; touch ready; wait`
			holder := start(t, dir, "-l", "0.6", "-k", "0.2", "L", "--", "sh", "-c", script)
			waitFor(t, "the holder's command to start", func() bool { return exists(filepath.Join(dir, "ready")) })
			pgid := readInt(t, filepath.Join(dir, "pgid"))
			lock := filepath.Join(dir, "L")
			tt.change(t, lock)
			if code := holder.wait(); code != exitLost {
				t.Fatalf("holder = %d, stderr %q; want %d", code, holder.stderr.String(), exitLost)
			}
			waitFor(t, "the command's process group to end", func() bool { return !groupRunning(pgid) })
			if b, err := os.ReadFile(lock); tt.name != "removed" && (err != nil || string(b) != "someone else") {
				t.Errorf("the replacement lock file = %q, %v; want it untouched", b, err)
			}
		})
	}
}

// When nfsflock dies without a chance to stop its command (SIGKILL, or
// SIGABRT, with which the Go runtime dumps its goroutines and exits at
// once, as a crash does), the command's whole
// process group dies with it, rather than run on unprotected while the
// lock expires: the command, what it runs in its foreground (a shell's
// child, as -c makes) and what it runs in the background of its group.
// The parent-death signal alone ends only the command.
func TestCommandDiesWithNfsflock(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGABRT} {
		t.Run(signalName(sig), func(t *testing.T) {
			dir := t.TempDir()
			p := start(t, dir, "L", "--", "sh", "-c", `sleep 600 & echo $! > bg; sleep 600 & echo $! > fg; echo $$ > pid; wait`)
			pids := map[string]int{}
			for _, name := range []string{"pid", "bg", "fg"} {
				pids[name] = readInt(t, filepath.Join(dir, name))
			}
			t.Cleanup(func() { syscall.Kill(-pids["pid"], syscall.SIGKILL) })
			p.signal(sig)
			for name, pid := range pids {
				waitFor(t, fmt.Sprintf("process %s of the command to end with nfsflock", name), func() bool { return !processRunning(pid) })
			}
		})
	}
}

// The command does not run before the watchdog knows its process group:
// here nfsflock is kept from telling it (NFSFLOCK_TEST_GUARD_DELAY, as a
// busy system may) while the command, were it running, would start a
// background process and kill nfsflock. Started at once, the command's
// background process outlived nfsflock: the watchdog, told nothing, ended
// nothing, and the parent-death signal reached the shell alone (a CI
// failure of TestCommandDiesWithNfsflock).
func TestCommandWaitsForWatchdog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startHeld(t, dir, "1s", "L", "--", "sh", "-c", `sleep 600 & echo $! > bg; kill -KILL $PPID; wait`)
	bg := readInt(t, filepath.Join(dir, "bg"))
	t.Cleanup(func() { syscall.Kill(bg, syscall.SIGKILL) })
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("nfsflock has not ended; its command was to kill it")
	}
	waitFor(t, "the command's background process to end with nfsflock", func() bool { return !processRunning(bg) })
}

// Without a terminal, a stop signal sent to nfsflock (here SIGTSTP, in a
// process group of its own that is not orphaned, where the system would
// deliver it) is ignored: nfsflock does not stop alone while its command
// runs unrefreshed. A stopped nfsflock would not handle the SIGTERM that
// follows, and would not exit (helper 59).
func TestStopSignalWithoutTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(binary, "L", "--", "sh", "-c", `touch ready; exec sleep 600`)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	})
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	cmd.Process.Signal(syscall.SIGTSTP)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if code := exitStatus(t, err); code != 128+int(syscall.SIGTERM) {
			t.Errorf("nfsflock after SIGTSTP and SIGTERM = %d; want %d", code, 128+int(syscall.SIGTERM))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nfsflock has not ended after SIGTSTP and SIGTERM: stopped, alone")
	}
}

// A command that ends by itself may leave a process running in the
// background of its group, as under flock(1): nfsflock dismisses its
// watchdog before it exits, and the watchdog ends nothing.
func TestBackgroundOutlivesCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, stderr := run(t, dir, "L", "--", "sh", "-c", `sleep 600 >/dev/null 2>&1 & echo $! > bg`); code != 0 {
		t.Fatalf("nfsflock L sh -c 'sleep 600 &' = %d, stderr %q; want 0", code, stderr)
	}
	bg := readInt(t, filepath.Join(dir, "bg"))
	t.Cleanup(func() { syscall.Kill(bg, syscall.SIGKILL) })
	if !processRunning(bg) {
		t.Error("the command's background process ended once nfsflock had exited; want it running")
	}
}

// statFields returns the fields of a /proc/PID/stat file that follow the
// command's name, which may hold spaces and parentheses: state, ppid,
// pgrp, session, tty_nr, tpgid and on. It returns nil where the file
// cannot be read.
func statFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// procStatPath is the path of process pid's stat file.
func procStatPath(pid int) string { return fmt.Sprintf("/proc/%d/stat", pid) }

// processRunning reports whether process pid runs; where /proc tells, a
// zombie does not count.
func processRunning(pid int) bool {
	if _, err := os.Stat(procStatPath(pid)); err != nil {
		return syscall.Kill(pid, 0) != syscall.ESRCH
	}
	fields := statFields(procStatPath(pid))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// groupRunning reports whether a process of group pgid runs. Where /proc
// tells, zombies, which the init process reaps in its own time, do not
// count.
func groupRunning(pgid int) bool {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return syscall.Kill(-pgid, 0) != syscall.ESRCH
	}
	for _, path := range stats {
		fields := statFields(path)
		if len(fields) >= 3 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" && fields[0] != "X" {
			return true
		}
	}
	return false
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	var n int
	waitFor(t, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		n, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return n
}

// SIGINT, SIGTERM, SIGHUP and SIGQUIT reach the command, whose status
// nfsflock then returns, as with flock(1): SIGQUIT does not make nfsflock
// dump its goroutines and exit 2.
func TestSignalsRelayed(t *testing.T) {
	t.Parallel()
	// Under nohup, SIGHUP is ignored, and nfsflock rightly leaves a signal
	// it was started ignoring alone. Catching it here for the test's
	// length makes the processes the test starts get the default.
	if signal.Ignored(syscall.SIGHUP) {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			script := `trap 'echo "$0" > got; exit 7' ` + strings.TrimPrefix(signalName(sig), "SIG") + `; touch ready; while :; do sleep 0.05; done`
			p := start(t, dir, "L", "--", "sh", "-c", script, signalName(sig))
			waitFor(t, "the command to start", func() bool { return exists(filepath.Join(dir, "ready")) })
			p.signal(sig)
			if code := p.wait(); code != 7 {
				t.Errorf("nfsflock after %v = %d, stderr %q; want the command's 7", sig, code, p.stderr.String())
			}
			if b, err := os.ReadFile(filepath.Join(dir, "got")); err != nil || strings.TrimSpace(string(b)) != signalName(sig) {
				t.Errorf("the command's trap wrote %q, %v; want %s", b, err, signalName(sig))
			}
		})
	}
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGABRT:
		return "SIGABRT"
	}
	return sig.String()
}

// A signal while nfsflock waits for the lock ends the wait: 128+N, and
// nothing of the waiter is left behind. SIGQUIT too: it does not make
// nfsflock dump its goroutines and exit 2, leaving its claim.
func TestSignalWhileWaiting(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT} {
		t.Run(signalName(sig), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			holder := hold(t, dir, "L")
			waiter := start(t, dir, "L", "--", "touch", "ran")
			mark := fmt.Sprintf("%s%d%s", "|", waiter.pid(), "|")
			claimed := func() bool {
				for _, name := range leftovers(t, dir) {
					if strings.Contains(name, mark) {
						return true
					}
				}
				return false
			}
			// Its claim file shows that it waits, with its signal handling in place.
			waitFor(t, "the waiter's claim", claimed)
			waiter.signal(sig)
			if code := waiter.wait(); code != 128+int(sig) {
				t.Errorf("waiter after %s = %d, stderr %q; want %d", signalName(sig), code, waiter.stderr.String(), 128+int(sig))
			}
			if exists(filepath.Join(dir, "ran")) {
				t.Error("the waiter's command ran")
			}
			if claimed() {
				t.Error("the waiter's claim file was left behind")
			}
			holder.closeStdin()
			if code := holder.wait(); code != 0 {
				t.Errorf("holder = %d; want 0", code)
			}
		})
	}
}

// Two nfsflock processes, each running a command many times over, take
// turns: no command runs while the other's does, and no update is lost.
func TestTakingTurns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "count"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	perProcess := 10
	if testing.Short() {
		perProcess = 3 // -short: fewer turns, the same checks
	}
	script := `mkdir inside || exit 99; n=$(cat count); sleep 0.01; echo $((n + 1)) > count; rmdir inside`
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range perProcess {
				cmd := exec.Command(binary, "L", "--", "sh", "-c", script)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("nfsflock L -- sh -c %q: %v, output %q", script, err, out)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if got := strings.TrimSpace(string(b)); err != nil || got != strconv.Itoa(2*perProcess) {
		t.Errorf("count = %q, %v; want %d", got, err, 2*perProcess)
	}
	if left := leftovers(t, dir, "count"); len(left) > 0 {
		t.Errorf("files left behind: %q", left)
	}
}

// break on a lock that has expired but is still within the clock slop says
// exactly that, and when it becomes breakable; it never says the lock has
// not expired.
func TestBreakWithinSlop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLock(t, dir, filepath.Join(dir, "L")+"|other.example|4242|1", time.Now().Add(-1200*time.Millisecond))
	code, _, stderr := run(t, dir, "break", "L")
	want := regexp.MustCompile(`^nfsflock: L: not breaking the lock of pid 4242 on host other.example: it expired \d+\.\d s ago; breakable in \d+\.\d s, after the clock slop\n$`)
	if code != exitUnavailable || !want.MatchString(stderr) {
		t.Errorf("break L within the clock slop = %d, stderr %q; want %d and %q", code, stderr, exitUnavailable, want)
	}
	checkSlopWords(t, "break L", stderr)
	want = regexp.MustCompile(`^L: broke the lock of pid 4242 on host other.example; it expired \d+(\.\d)? s ago\n$`)
	if code, out, stderr := run(t, dir, "break", "--clock-slop", "1", "L"); code != 0 || !want.MatchString(out) {
		t.Errorf("break --clock-slop 1 L = %d, %q, stderr %q; want 0 and %q", code, out, stderr, want)
	}
}

// --dead-owner-break breaks at once the unexpired lock of a holder of this
// host whose pid runs no process, on run and break; without it break says
// what it would do, and that a holder in another pid namespace may be
// running. A claim of nfsflock's from another pid namespace is never
// judged dead, though status calls it stale.
func TestDeadOwnerBreak(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pid := deadPID(t)
	dead := func(dir, random string) {
		writeLock(t, dir, fmt.Sprintf("%s|%s|%d|%s", filepath.Join(dir, "L"), host, pid, random), time.Now().Add(time.Hour))
	}
	const fluflRandom = "7308917433465018353"
	const otherNamespace = "0000000000000000042" + "000000000000001" // a Go claim's random part and tag 1

	dir := t.TempDir()
	dead(dir, fluflRandom)
	code, _, stderr := run(t, dir, "break", "L")
	for _, want := range []string{fmt.Sprintf("no process has pid %d on this host", pid), "another pid namespace (a container)", "--dead-owner-break breaks it"} {
		if code != exitUnavailable || !strings.Contains(stderr, want) {
			t.Errorf("break L of a dead holder's lock = %d, stderr %q; want %d and %q", code, stderr, exitUnavailable, want)
		}
	}
	if code, _, stderr := run(t, dir, "-n", "L", "true"); code != exitUnavailable {
		t.Errorf("nfsflock -n L true on a dead holder's lock = %d, stderr %q; want %d", code, stderr, exitUnavailable)
	}
	if r := status(t, dir, "--dead-owner-break", "L"); r.Status != "stale" || !r.Breakable || r.Expired {
		t.Errorf("status --dead-owner-break L = %+v; want stale, breakable, not expired", r)
	}
	if code, out, stderr := run(t, dir, "break", "--dead-owner-break", "L"); code != 0 || !strings.Contains(out, "broke the lock of pid "+strconv.Itoa(pid)) {
		t.Errorf("break --dead-owner-break L = %d, %q, stderr %q; want 0, broke", code, out, stderr)
	}
	dead(dir, fluflRandom)
	if code, _, stderr := run(t, dir, "--dead-owner-break", "-n", "L", "true"); code != 0 {
		t.Errorf("nfsflock --dead-owner-break -n L true on a dead holder's lock = %d, stderr %q; want 0", code, stderr)
	}

	dir = t.TempDir()
	dead(dir, otherNamespace)
	if r := status(t, dir, "--dead-owner-break", "L"); r.Status != "stale" || r.Breakable {
		t.Errorf("status --dead-owner-break L of another pid namespace's claim = %+v; want stale, not breakable", r)
	}
	if code, _, stderr := run(t, dir, "break", "--dead-owner-break", "L"); code != exitUnavailable {
		t.Errorf("break --dead-owner-break L of another pid namespace's claim = %d, stderr %q; want %d", code, stderr, exitUnavailable)
	}
	if code, _, stderr := run(t, dir, "break", "L"); code != exitUnavailable || !strings.Contains(stderr, "--dead-owner-break leaves it alone") {
		t.Errorf("break L of another pid namespace's claim = %d, stderr %q; want %d, and that --dead-owner-break leaves it alone", code, stderr, exitUnavailable)
	}
}

// A flock(1) user's habits work: -x, -e, -o, LOCKFILE -c COMMAND through
// sh -c, --version; -s and -u are refused with a sentence.
func TestFlockHabits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, stderr := run(t, dir, "-x", "-o", "-w", "5", "L", "-c", `echo "in sh: $0"; exit 3`)
	if code != 3 || out != "in sh: /bin/sh\n" {
		t.Errorf("nfsflock -x -o -w 5 L -c '...; exit 3' = %d, %q, stderr %q; want 3, %q", code, out, stderr, "in sh: /bin/sh\n")
	}
	if code, _, stderr := run(t, dir, "-en", "L", "--command", "true"); code != 0 {
		t.Errorf("nfsflock -en L --command true = %d, stderr %q; want 0", code, stderr)
	}
	want := regexp.MustCompile(`^nfsflock: getting the lock took \d+\.\d s; running true\n$`)
	if code, _, stderr := run(t, dir, "--verbose", "L", "true"); code != 0 || !want.MatchString(stderr) {
		t.Errorf("nfsflock --verbose L true = %d, stderr %q; want 0 and %q", code, stderr, want)
	}
	for _, args := range [][]string{{"--version"}, {"-V"}, {"status", "--version"}} {
		code, out, _ := run(t, dir, args...)
		if code != 0 || !strings.HasPrefix(out, "nfsflock ") || !strings.Contains(out, "built with go") {
			t.Errorf("nfsflock %q = %d, %q; want 0 and the version", args, code, out)
		}
	}
	for args, want := range map[string]string{
		"-s L true":      "nfsflock: -s: a lock file taken with link(2) has one holder at a time: nfsflock has no shared locks",
		"--unlock L":     "nfsflock: --unlock: nfsflock releases the lock itself when COMMAND ends",
		"-F L true":      "nfsflock: -F: nfsflock stays while COMMAND runs, to keep the lock's lifetime refreshed",
		"-n 9":           "nfsflock: missing COMMAND after LOCKFILE 9: nfsflock cannot lock a file descriptor as flock(1) does",
		"-c true L":      "nfsflock: -c comes after LOCKFILE, as in flock(1)",
		"L -c true more": "nfsflock: -c after LOCKFILE takes exactly one COMMAND, which sh -c runs; got 2 arguments",
	} {
		code, _, stderr := run(t, dir, strings.Fields(args)...)
		if code != exitUsage || !strings.HasPrefix(stderr, want) {
			t.Errorf("nfsflock %s = %d, stderr %q; want %d and %q", args, code, stderr, exitUsage, want)
		}
	}
}

// Messages are for people: one line that says what happened, the lock
// file named as typed and flags as typed, without the chain of Go calls
// that led there.
func TestMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "not-executable"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeLock(t, dir, filepath.Join(dir, "held")+"|other.example|4242|1", time.Now().Add(time.Hour))
	if err := os.Rename(filepath.Join(dir, "L"), filepath.Join(dir, "held")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string // the first line of standard error, a regular expression
	}{
		{[]string{"nodir/L", "true"}, exitFailed, `^nfsflock: nodir/L: its directory /.*/nodir does not exist$`},
		{[]string{"status", "nodir/L"}, exitFailed, `^nfsflock: nodir/L: its directory /.*/nodir does not exist$`},
		{[]string{"break", "nodir/L"}, exitFailed, `^nfsflock: nodir/L: its directory /.*/nodir does not exist$`},
		{[]string{"a|b", "true"}, exitUsage, `^nfsflock: a\|b: path contains the separator "\|"$`},
		{[]string{"L", "nfsflock-test-no-such-command"}, exitNotFound, `^nfsflock: nfsflock-test-no-such-command: command not found$`},
		{[]string{"L", "./not-executable"}, exitCannotRun, `^nfsflock: ./not-executable: cannot run it: permission denied \(is it executable\?\)$`},
		{[]string{"L", "/"}, exitCannotRun, `^nfsflock: /: cannot run it: is a directory$`},
		{[]string{"-w", "0", "held", "true"}, exitUnavailable, `^nfsflock: held: held by pid 4242 on host other.example \(expires in 60 min\); not waiting \(-w 0\)$`},
		{[]string{"--timeout=0", "held", "true"}, exitUnavailable, `; not waiting \(--timeout 0\)$`},
		{[]string{"--nonblock", "held", "true"}, exitUnavailable, `; not waiting \(--nonblock\)$`},
		{[]string{"--timeout", "0.2", "held", "true"}, exitUnavailable, `\(expires in 60 min\); gave up waiting after 0.2 s \(--timeout 0.2\)$`},
		{[]string{"--lifetime", "0", "L", "true"}, exitUsage, `^nfsflock: --lifetime 0: want a duration above 0 `},
		{[]string{"--kill-after=-1", "L", "true"}, exitUsage, `^nfsflock: --kill-after -1: want a duration 0 or more `},
		{[]string{"-l", "0.001", "L", "true"}, exitUsage, `^nfsflock: -l 0.001: want a lifetime of at least 100ms: `},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, dir, tt.args...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != tt.code || !regexp.MustCompile(tt.want).MatchString(first) {
			t.Errorf("nfsflock %q = %d, stderr %q; want %d and a first line matching %q", tt.args, code, stderr, tt.code, tt.want)
		}
		said := strings.ReplaceAll(stderr, "nfsflock: ", "")
		for _, chain := range []string{"flock: ", "new ", "acquire ", "exec: ", "stat ", "inspect "} {
			if strings.Contains(said, chain) {
				t.Errorf("nfsflock %q: stderr %q holds the Go call chain %q", tt.args, stderr, chain)
			}
		}
	}
}

// A live holder in another pid namespace under this hostname, as in a
// container, looks dead here: status calls its lock stale, and says that
// it may run elsewhere. Its claim says where it runs, so neither
// --dead-owner-break nor a waiter breaks it, and its command runs on.
func TestAnotherPidNamespace(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("pid namespaces are Linux's")
	}
	if os.Geteuid() != 0 {
		t.Skip("unshare --pid needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1), from util-linux")
	}
	dir := t.TempDir()
	// Skip the low pids of the new namespace, which this host's kernel
	// threads have, so that the holder's pid runs nothing here.
	script := `echo 20000 > /proc/sys/kernel/ns_last_pid || exit; "$0" L sh -c 'echo $PPID > pid; exec cat'; echo $? > status`
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, binary)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	pid := readInt(t, filepath.Join(dir, "pid"))
	if processRunning(pid) {
		t.Skipf("the holder's pid %d in its namespace runs a process here too", pid)
	}
	r := status(t, dir, "--dead-owner-break", "L")
	if r.Status != "stale" || r.State != "stale" || r.Alive || !r.Local || r.Breakable || r.Holder == nil || r.Holder.PID != pid {
		t.Errorf("status --json --dead-owner-break L of a holder in another pid namespace = %+v; want stale, local, not alive, not breakable, pid %d", r, pid)
	}
	code, _, stderr := run(t, dir, "break", "L")
	if code != exitUnavailable || !strings.Contains(stderr, "its claim says it runs in another pid namespace") {
		t.Errorf("break L = %d, stderr %q; want %d, and that its claim says it runs in another pid namespace", code, stderr, exitUnavailable)
	}
	for _, args := range [][]string{{"break", "--dead-owner-break", "L"}, {"--dead-owner-break", "-n", "L", "true"}} {
		if code, _, stderr := run(t, dir, args...); code != exitUnavailable {
			t.Errorf("nfsflock %q = %d, stderr %q; want %d", args, code, stderr, exitUnavailable)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unshare: %v, output %q", err, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "status")); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("the holder in the other pid namespace exited %q, %v, output %q; want 0: its lock was not lost", b, err, out.String())
	}
}

// checkSlopWords checks, in what nfsflock printed, the words for a lock
// within the default clock slop of 10 s: "expired X s ago; breakable in
// Y s, after the clock slop", where X and Y make up the slop. Which X and
// Y depend on how long the test took, and are not checked.
func checkSlopWords(t *testing.T, what, out string) {
	t.Helper()
	m := regexp.MustCompile(`expired (\d+\.\d) s ago; breakable in (\d+\.\d) s, after the clock slop`).FindStringSubmatch(out)
	if m == nil {
		if !regexp.MustCompile(`expired \d+ s ago; breakable\)`).MatchString(out) {
			t.Errorf("%s printed %q; want it to say when the lock expired and when it is breakable", what, out)
		}
		return
	}
	x, _ := strconv.ParseFloat(m[1], 64)
	y, _ := strconv.ParseFloat(m[2], 64)
	if sum := x + y; sum < 9.75 || sum > 10.25 {
		t.Errorf("%s printed %q: %.1f s ago and %.1f s to go make %.1f s; want the clock slop, 10 s", what, out, x, y, sum)
	}
}

// status warns of a lock file whose expiry lies far ahead of the
// filesystem's time, as a host with a wrong clock writes, and says how to
// break it; --json says so too.
func TestStatusFarAhead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLock(t, dir, filepath.Join(dir, "L")+"|elsewhere|42|0000000000000000001", time.Now().Add(365*24*time.Hour))
	code, out, _ := run(t, dir, "status", "L")
	if code != statusHeld || !strings.Contains(out, "more than a day ahead of the filesystem's time") || !strings.Contains(out, "nfsflock break --force") {
		t.Errorf("status L of a lock a year ahead = %d, %q; want %d and a warning", code, out, statusHeld)
	}
	code, out, _ = run(t, dir, "status", "--json", "L")
	if code != statusHeld || !strings.Contains(out, `"far_ahead": true`) {
		t.Errorf("status --json L of a lock a year ahead = %d, %q; want far_ahead true", code, out)
	}
	// An hour ahead is what a holder with a long lifetime writes.
	writeLock(t, dir, filepath.Join(dir, "L")+"|elsewhere|42|0000000000000000001", time.Now().Add(time.Hour))
	if _, out, _ := run(t, dir, "status", "L"); strings.Contains(out, "ahead of the filesystem") {
		t.Errorf("status L of a lock an hour ahead = %q; want no warning", out)
	}
}

// nfsflock survives writing to a standard error or standard output whose
// reader has gone, as in ( nfsflock --verbose L cmd ) 2>&1 | true: Go's
// runtime would end it by SIGPIPE before the command ran, leaving the
// lock file and its claim behind. The command still runs, and nothing is
// left.
func TestBrokenPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	broken := func() *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		t.Cleanup(func() { w.Close() })
		return w
	}
	cmd := exec.Command(binary, "--verbose", "L", "touch", "ran")
	cmd.Dir, cmd.Stderr = dir, broken()
	if code := exitStatus(t, cmd.Run()); code != 0 || !exists(filepath.Join(dir, "ran")) {
		t.Errorf("nfsflock --verbose L touch ran with a broken standard error = %d, ran: %v; want 0 and the command run", code, exists(filepath.Join(dir, "ran")))
	}
	if left := leftovers(t, dir, "ran"); len(left) > 0 {
		t.Errorf("files left behind: %q", left)
	}
	cmd = exec.Command(binary, "status", "L")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, broken(), broken()
	if code := exitStatus(t, cmd.Run()); code != statusFree {
		t.Errorf("nfsflock status L with a broken standard output and error = %d; want %d, free", code, statusFree)
	}
}

// A command that writes to a pipe whose reader has gone still dies by
// SIGPIPE, as nfsflock L yes | head shows: nfsflock's own handling of
// SIGPIPE must not reach the command, as an ignored signal would.
func TestCommandGetsSIGPIPE(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `("$0" L yes; echo $? > status) | head -n 1`, binary)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "y\n" {
		t.Fatalf("sh -c 'nfsflock L yes | head -n 1': %v, output %q; want y", err, out)
	}
	if code := readInt(t, filepath.Join(dir, "status")); code != 128+int(syscall.SIGPIPE) {
		t.Errorf("nfsflock L yes | head -n 1: nfsflock = %d; want %d, yes ended by SIGPIPE", code, 128+int(syscall.SIGPIPE))
	}
}

// An executable script without a #! line runs with /bin/sh, as execvp(3)
// and so flock(1) run it when the system refuses it (ENOEXEC), with its
// path as $0 and its arguments after it.
func TestScriptWithoutShebang(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "noshebang.sh"), []byte(`echo "$0 $1" > ran; exit 3`+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, dir, "L", "./noshebang.sh", "arg")
	b, err := os.ReadFile(filepath.Join(dir, "ran"))
	if code != 3 || err != nil || string(b) != "./noshebang.sh arg\n" {
		t.Errorf("nfsflock L ./noshebang.sh arg = %d, stderr %q, the script wrote %q, %v; want 3 and %q", code, stderr, b, err, "./noshebang.sh arg\n")
	}
	if left := leftovers(t, dir, "noshebang.sh", "ran"); len(left) > 0 {
		t.Errorf("files left behind: %q", left)
	}
}
