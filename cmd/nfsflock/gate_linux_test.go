package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A stop signal that reaches the command's process group while the gate
// still holds the command back (here SIGTSTP, sent while nfsflock is kept
// from telling the watchdog) is dropped: the command runs, and nfsflock
// goes on. A gate stopped there would have stopped nfsflock with it, in
// the wait for the exec, with nobody to continue either.
func TestGateDropsStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startHeld(t, dir, "2s", "L", "--", "sh", "-c", "touch ran")
	gate := waitGate(t, p, true)
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

// childOf returns the pid of a child of process parent whose arguments
// are name alone, or 0 if there is none. It reads the parent's task
// children, which is quick enough to catch a child as it starts.
func childOf(parent int, name string) int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(parent) + "/task/*/children")
	for _, path := range tasks {
		b, _ := os.ReadFile(path)
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if named(pid, name) {
				return pid
			}
		}
	}
	return 0
}

// waitGate waits for nfsflock p's gate and returns its pid; with set up,
// until the gate catches the stop signals too, which it does after
// SIGQUIT: the runtime catches SIGQUIT, and the others, from its start
// (helper 79), and SIGTSTP never.
func waitGate(t *testing.T, p *proc, setUp bool) int {
	t.Helper()
	var gate int
	waitFor(t, "the gate", func() bool {
		gate = childOf(p.pid(), gateName)
		return gate > 0 && (!setUp || catches(gate, syscall.SIGTSTP))
	})
	return gate
}

// named reports whether process pid's arguments are name alone.
func named(pid int, name string) bool {
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return bytes.Equal(cmdline, []byte(name+"\x00"))
}

// nfsflock killed before the watchdog knows the command's group leaves
// nothing running: the gate, told nothing, exits without running the
// command, and so does the watchdog.
func TestKilledBeforeGuardRunsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startHeld(t, dir, "5s", "L", "--", "sh", "-c", "touch ran; exec sleep 600")
	var gate, wd int
	waitFor(t, "the gate and the watchdog", func() bool {
		gate, wd = childOf(p.pid(), gateName), childOf(p.pid(), watchdogName)
		return gate > 0 && wd > 0
	})
	t.Cleanup(func() {
		if processRunning(gate) {
			syscall.Kill(-gate, syscall.SIGKILL)
		}
	})
	p.signal(syscall.SIGKILL)
	<-p.done
	waitFor(t, "the gate and the watchdog to exit", func() bool { return !processRunning(gate) && !processRunning(wd) })
	if exists(filepath.Join(dir, "ran")) {
		t.Error("the command ran, though nfsflock died before telling the watchdog its group")
	}
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

// A gate stopped before it could catch the stop signals (here SIGSTOP,
// which it cannot catch; ^Z at its very start) is continued by nfsflock,
// which waits for it: the stop was meant for a command that does not run
// yet. Left stopped, it held nfsflock, which ignored even SIGTERM then,
// with the terminal's foreground its group's (helper 77).
func TestGateStoppedIsContinued(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startHeld(t, dir, "1s", "L", "--", "sh", "-c", "touch ran")
	gate := waitGate(t, p, false)
	if err := syscall.Kill(gate, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("nfsflock = %d, stderr %q; want 0", code, p.stderr.String())
	}
	if !exists(filepath.Join(dir, "ran")) {
		t.Error("the command did not run")
	}
}

// A signal that would end the command, sent to its group while the gate
// still holds it back (^C, ^\), ends nfsflock as it would have ended the
// command, 128+N, and the command does not run. SIGQUIT once made the
// gate's runtime dump its goroutines and exit 2 (helper 77).
func TestGateReportsTermination(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(signalName(sig), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := startHeld(t, dir, "2s", "L", "--", "sh", "-c", "touch ran")
			gate := waitGate(t, p, true) // the gate catching SIGQUIT itself
			if err := syscall.Kill(-gate, sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(); code != 128+int(sig) {
				t.Errorf("nfsflock = %d, stderr %q; want %d", code, p.stderr.String(), 128+int(sig))
			}
			if exists(filepath.Join(dir, "ran")) {
				t.Error("the command ran")
			}
		})
	}
}

// TestGateStoppedIsContinued with a command whose arguments and
// environment are more than a pipe holds (64 KiB on Linux): nfsflock, its
// write to the stopped gate blocked, continues it all the same. The
// nudges once began only after that write, and nfsflock hung for good,
// refreshing the lock, with nothing running (helper 78).
func TestGateStoppedBigCommandIsContinued(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := strings.Repeat("a", 100_000)
	p := startHeld(t, dir, "1s", "L", "--", "sh", "-c", "touch ran", "sh", big)
	gate := waitGate(t, p, false)
	t.Cleanup(func() { syscall.Kill(-gate, syscall.SIGKILL) })
	if err := syscall.Kill(gate, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("nfsflock hangs: the gate, stopped, was not continued while nfsflock wrote it a command bigger than a pipe")
	}
	if !exists(filepath.Join(dir, "ran")) {
		t.Error("the command did not run")
	}
}

// SIGQUIT (^\) sent to the gate as soon as it has executed itself, before
// it can catch it, never runs the command: the gate's runtime dumps its
// goroutines and exits 2 without a word, and nfsflock reports an error.
// That silence once read as a gate that could not run, and the command
// was started directly: ^\ meant to stop the command ran it (helper 78).
func TestGateQuitAtStartRunsNothing(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		dir := t.TempDir()
		p := startHeld(t, dir, "200ms", "L", "--", "sh", "-c", "touch ran")
		gate := 0
		for deadline := time.Now().Add(10 * time.Second); gate == 0 && time.Now().Before(deadline); {
			gate = childOf(p.pid(), gateName)
		}
		if gate == 0 {
			t.Fatal("no gate")
		}
		syscall.Kill(gate, syscall.SIGQUIT)
		code := p.wait()
		if exists(filepath.Join(dir, "ran")) {
			t.Fatalf("attempt %d: SIGQUIT to the gate at its start: nfsflock = %d, and the command ran; stderr begins %q",
				i, code, firstLines(p.stderr.String(), 3))
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// A gate stopped (SIGSTOP) after it reported ready and before its exec is
// continued too: nfsflock once stopped continuing it at that report, and
// hung for good with the relay's lock held, ignoring SIGTERM, nothing
// running and the lock refreshed (helper 79). A large environment widens
// that window, since the exec first converts it; the test stops the gate
// every millisecond while it is still the gate.
func TestGateStoppedAfterReadyIsContinued(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := os.Environ()
	for i := range 30000 {
		env = append(env, fmt.Sprintf("NFSFLOCK_TEST_PAD_%05d=%s", i, strings.Repeat("x", 20)))
	}
	p := startEnv(t, dir, env, "L", "--", "sh", "-c", "touch ran")
	gate := waitGate(t, p, false)
	t.Cleanup(func() { syscall.Kill(gate, syscall.SIGCONT) })
	isGate := func() bool { return named(gate, gateName) }
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && isGate(); {
		syscall.Kill(gate, syscall.SIGSTOP)
		time.Sleep(time.Millisecond)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		if f := statFields(procStatPath(gate)); isGate() && len(f) > 0 && f[0] == "T" {
			t.Fatal("nfsflock hangs, the gate left stopped")
		}
		// A stop that reached the command itself, which had executed
		// between the look and the kill, is the command's.
		syscall.Kill(gate, syscall.SIGCONT)
	}
	if code := p.wait(); code != 0 || !exists(filepath.Join(dir, "ran")) {
		t.Fatalf("nfsflock = %d, ran %v, stderr %q", code, exists(filepath.Join(dir, "ran")), p.stderr.String())
	}
}
