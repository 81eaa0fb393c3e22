package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A stop signal that reaches the command's process group while the gate
// still holds the command back (here SIGTSTP, sent while nfsflock is kept
// from telling the watchdog) is dropped: the command runs, and nfsflock
// goes on. A gate stopped there would have stopped nfsflock with it, in
// the wait for the exec, with nobody to continue either.
func TestGateDropsStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := append(os.Environ(), "NFSFLOCK_TEST_GUARD_DELAY=2s")
	p := startEnv(t, dir, env, "L", "--", "sh", "-c", "touch ran")
	var gate int
	waitFor(t, "the gate, catching SIGTSTP", func() bool {
		gate = gateOf(p.pid())
		return gate > 0 && catches(gate, syscall.SIGTSTP)
	})
	if exists(filepath.Join(dir, "ran")) {
		t.Fatal("the command ran before the watchdog knew its group")
	}
	if err := syscall.Kill(-gate, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("nfsflock = %d, stderr %q; want 0", code, p.stderr.String())
	}
	if !exists(filepath.Join(dir, "ran")) {
		t.Error("the command did not run")
	}
}

// gateOf returns the pid of the gate that nfsflock process parent runs,
// or 0 if there is none.
func gateOf(parent int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		fields := statFields(path)
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil {
			continue
		}
		if cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "cmdline")); bytes.Equal(cmdline, []byte(gateName+"\x00")) {
			return pid
		}
	}
	return 0
}

// catches reports whether process pid catches sig, as /proc tells.
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(procStatusPath(pid))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(sig-1)) != 0
		}
	}
	return false
}

// procStatusPath is the path of process pid's status file.
func procStatusPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/status" }
