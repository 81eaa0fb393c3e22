package main

// The command end to end on Windows: .ci/wine cross-builds nfsflock.exe,
// names it in NFSFLOCK_WINDOWS_COMMAND and runs this suite under Wine. The
// commands nfsflock runs here are this test binary again, in a role. The
// unix suite (main_test.go: sh, signals, process groups, terminals) is
// set aside by its build constraint.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock/windows"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// roleEnv names the role this test binary plays as nfsflock's command.
const roleEnv = "NFSFLOCK_WINDOWS_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "exit":
		// Exits with the status in its first argument.
		code, _ := strconv.Atoi(os.Args[len(os.Args)-1])
		os.Exit(code)
	case "sleeper":
		// Starts a grandchild sleeper (unless it is one), writes its pid
		// to the file named in its last argument, and sleeps.
		dir := filepath.Dir(os.Args[len(os.Args)-1])
		if os.Getenv("GRANDCHILD") == "" {
			exe, _ := os.Executable()
			cmd := exec.Command(exe, filepath.Join(dir, "grandchild"))
			cmd.Env = append(os.Environ(), "GRANDCHILD=1")
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		writeAtomically(os.Args[len(os.Args)-1], strconv.Itoa(os.Getpid()))
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown role", os.Getenv(roleEnv))
		os.Exit(2)
	}
}

// writeAtomically writes a file that a reader never sees half-written.
func writeAtomically(path, data string) {
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		panic(err)
	}
}

// nfsflockExe returns the command to run nfsflock.exe with args in dir, its
// commands playing role; the test is skipped, with a reason, outside
// .ci/wine, which builds nfsflock.exe.
func nfsflockExe(t *testing.T, dir, role string, args ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("NFSFLOCK_WINDOWS_COMMAND")
	if bin == "" {
		t.Skip("NFSFLOCK_WINDOWS_COMMAND names no nfsflock.exe: run the Windows suites with .ci/wine")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	return cmd
}

// self is this test binary, as nfsflock's command.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("running nfsflock: %v", err)
	return -1
}

// waitFile waits for path to exist and returns its contents; it fails the
// test if that takes unreasonably long (a hang, not slowness).
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDead waits for process pid to end, failing the test after a minute.
func waitDead(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for windows.ProcessAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs a minute on", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSleeper starts nfsflock holding lock in dir while a sleeper (and
// its grandchild) run, and returns once both have written their pids.
func startSleeper(t *testing.T, dir string, flags ...string) (cmd *exec.Cmd, child, grandchild int) {
	t.Helper()
	args := append(append([]string(nil), flags...), "L", "--", self(t), filepath.Join(dir, "child"))
	cmd = nfsflockExe(t, dir, "sleeper", args...)
	// A command that outlives nfsflock would keep the pipe open, and Wait
	// waiting for it.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	child, _ = strconv.Atoi(waitFile(t, filepath.Join(dir, "child")))
	grandchild, _ = strconv.Atoi(waitFile(t, filepath.Join(dir, "grandchild")))
	if child == 0 || grandchild == 0 {
		t.Fatalf("pids %d and %d from the sleepers", child, grandchild)
	}
	return cmd, child, grandchild
}

// TestWindowsRunStatus: nfsflock runs the command under the lock, exits
// with its status and leaves nothing behind; bad input fails as usage.
func TestWindowsRunStatus(t *testing.T) {
	dir := testenv.TempDir(t)
	cmd := nfsflockExe(t, dir, "exit", "L", "--", self(t), "7")
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 7 {
		t.Errorf("nfsflock L -- exit 7 = %d, output %q; want 7", code, out)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("left behind: %v (%v)", ents, err)
	}
	for _, args := range [][]string{
		{"-l", "-1s", "L", "--", self(t), "0"},
		{"--no-such-flag", "L", "--", self(t), "0"},
		{"L"},
		{"status", "L", "extra"},
	} {
		out, err := nfsflockExe(t, dir, "exit", args...).CombinedOutput()
		if code := exitCode(t, err); code != exitUsage {
			t.Errorf("nfsflock %q = %d, output %q; want %d", args, code, out, exitUsage)
		}
	}
}

// TestWindowsHeldAndStatus: while one nfsflock holds the lock, -n gives
// up with 75 and status names the holder.
func TestWindowsHeldAndStatus(t *testing.T) {
	dir := testenv.TempDir(t)
	holder, _, _ := startSleeper(t, dir)
	out, err := nfsflockExe(t, dir, "exit", "-n", "L", "--", self(t), "0").CombinedOutput()
	if code := exitCode(t, err); code != exitUnavailable {
		t.Errorf("nfsflock -n on a held lock = %d, output %q; want %d", code, out, exitUnavailable)
	}
	out, err = nfsflockExe(t, dir, "", "status", "--json", "L").Output()
	if err != nil {
		t.Fatalf("nfsflock status --json = %v", err)
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("status --json: %v in %q", err, out)
	}
	if !r.Locked || r.Holder == nil || r.Holder.PID != holder.Process.Pid {
		t.Errorf("status --json = %s; want locked by pid %d", out, holder.Process.Pid)
	}
}

// TestWindowsLostLockEndsJob: when the lock is lost (moved aside, as a
// breaker does), nfsflock ends its command and what the command started
// (the job object), and exits 70.
func TestWindowsLostLockEndsJob(t *testing.T) {
	dir := testenv.TempDir(t)
	holder, child, grandchild := startSleeper(t, dir, "-l", "1s")
	if err := os.Rename(filepath.Join(dir, "L"), filepath.Join(dir, "L.broken")); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, holder.Wait()); code != exitLost {
		t.Errorf("nfsflock after its lock was moved aside = %d; want %d", code, exitLost)
	}
	waitDead(t, "the command", child)
	waitDead(t, "the command's child", grandchild)
}

// TestWindowsCommandDiesWithNfsflock: when nfsflock is ended by
// TerminateProcess, its job object's last handle closes and the command's
// processes end with it, rather than run on while the lock expires.
func TestWindowsCommandDiesWithNfsflock(t *testing.T) {
	dir := testenv.TempDir(t)
	holder, child, grandchild := startSleeper(t, dir, "-l", "2s")
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	waitDead(t, "the command", child)
	waitDead(t, "the command's child", grandchild)

	// The lock is left behind, its holder dead on this host: stale, and
	// taken by the next nfsflock once it has expired.
	out, err := nfsflockExe(t, dir, "", "status", "--json", "L").Output()
	var r report
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != statusStale || json.Unmarshal(out, &r) != nil || r.State != "stale" {
		t.Errorf("status --json after the holder was killed = %s, %v; want state stale and exit status %d", out, err, statusStale)
	}
	out, err = nfsflockExe(t, dir, "exit", "-w", "1m", "--clock-slop", "0", "L", "--", self(t), "0").CombinedOutput()
	if code := exitCode(t, err); code != 0 {
		t.Errorf("nfsflock after the holder was killed = %d, output %q; want 0", code, out)
	}
}
