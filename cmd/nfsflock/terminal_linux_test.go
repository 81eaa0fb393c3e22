package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A terminal is a pseudo-terminal whose far side is the controlling
// terminal of an nfsflock started on it, as from an interactive shell.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd

	mu   sync.Mutex
	seen bytes.Buffer // all that nfsflock and its command wrote
	read chan struct{}
	done chan struct{}
	err  error // set before done closes
}

func startOnTerminal(t *testing.T, dir string, args ...string) *terminal {
	t.Helper()
	return startProgramOnTerminal(t, dir, false, binary, args...)
}

// startProgramOnTerminal starts prog as the session leader of the
// terminal, with nfsflock's path in $NFSFLOCK. With noInput, its standard
// input is /dev/null rather than the terminal.
func startProgramOnTerminal(t *testing.T, dir string, noInput bool, prog string, args ...string) *terminal {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()

	term := &terminal{t: t, master: master, read: make(chan struct{}), done: make(chan struct{})}
	term.cmd = exec.Command(prog, args...)
	term.cmd.Dir = dir
	term.cmd.Env = append(os.Environ(), "NFSFLOCK="+binary)
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = slave, slave, slave
	// A session of its own, with the terminal as its controlling one: the
	// session's process group, nfsflock's, is the terminal's foreground.
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if noInput {
		term.cmd.Stdin = nil // /dev/null
		term.cmd.SysProcAttr.Ctty = 1
	}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(term.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.seen.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		term.err = term.cmd.Wait()
		close(term.done)
	}()
	t.Cleanup(func() {
		select {
		case <-term.done:
		default:
			term.cmd.Process.Kill()
			<-term.done
		}
	})
	return term
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.seen.String()
}

// waitOutput waits until nfsflock or its command has written want.
func (term *terminal) waitOutput(want string) {
	term.t.Helper()
	waitFor(term.t, fmt.Sprintf("%q on the terminal, which shows %q", want, term.output()), func() bool {
		return strings.Contains(term.output(), want)
	})
}

func (term *terminal) write(s string) {
	term.t.Helper()
	if _, err := term.master.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) wait() int {
	term.t.Helper()
	select {
	case <-term.done:
	case <-time.After(60 * time.Second):
		term.t.Fatalf("nfsflock on a terminal has not ended; it shows %q", term.output())
	}
	return exitStatus(term.t, term.err)
}

// processState is the state letter of /proc/pid/stat: R, S, T (stopped)...
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// While it waits on a terminal, nfsflock shows who holds the lock.
func TestTerminalShowsHolder(t *testing.T) {
	dir := t.TempDir()
	holder := hold(t, dir, "L")
	term := startOnTerminal(t, dir, "L", "--", "echo", "ran")
	term.waitOutput(fmt.Sprintf("held by pid %d on ", holder.pid()))
	term.waitOutput("expires in ")
	holder.closeStdin()
	if code := term.wait(); code != 0 {
		t.Errorf("nfsflock on a terminal = %d, showing %q; want 0", code, term.output())
	}
	<-term.read
	if out := term.output(); !strings.Contains(out, "ran") {
		t.Errorf("the terminal shows %q; want the command's output", out)
	}
}

// The line shown while waiting escapes text from the lock file.
func TestTerminalHostileLockFile(t *testing.T) {
	dir := t.TempDir()
	writeHostileLock(t, dir, time.Now().Add(time.Hour))
	term := startOnTerminal(t, dir, "-w", "1", "L", "--", "true")
	term.waitOutput("held by pid 4242 on ")
	if code := term.wait(); code != exitUnavailable {
		t.Errorf("nfsflock -w 1 on a terminal = %d, showing %q; want %d", code, term.output(), exitUnavailable)
	}
	<-term.read
	checkEscaped(t, "the waiting line", term.output())
}

// With -q, or when the lock is free, nothing is shown.
func TestTerminalQuiet(t *testing.T) {
	dir := t.TempDir()
	holder := hold(t, dir, "L")
	term := startOnTerminal(t, dir, "-q", "-w", "0.5", "L", "--", "true")
	if code := term.wait(); code != exitUnavailable {
		t.Errorf("nfsflock -q -w 0.5 on a terminal = %d; want %d", code, exitUnavailable)
	}
	<-term.read
	if out := term.output(); out != "" {
		t.Errorf("nfsflock -q shows %q on the terminal; want nothing", out)
	}
	holder.closeStdin()
	holder.wait()

	term = startOnTerminal(t, dir, "L", "--", "true")
	if code := term.wait(); code != 0 {
		t.Errorf("nfsflock with a free lock on a terminal = %d; want 0", code)
	}
	<-term.read
	if out := term.output(); out != "" {
		t.Errorf("nfsflock with a free lock shows %q on the terminal; want nothing", out)
	}
}

// The command can read the terminal, and gets ^C from it.
func TestTerminalForeground(t *testing.T) {
	dir := t.TempDir()
	term := startOnTerminal(t, dir, "L", "--", "sh", "-c", `trap 'echo interrupted; exit 9' INT; read x; echo "got $x"; touch ready; while :; do sleep 0.05; done`)
	term.write("hello\n")
	term.waitOutput("got hello")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x03")
	if code := term.wait(); code != 9 {
		t.Errorf("nfsflock after ^C = %d, showing %q; want the command's 9", code, term.output())
	}
	term.waitOutput("interrupted")
}

// ^Z stops the command and nfsflock with it, and the command stays
// stopped while nfsflock is; continuing nfsflock continues the command, in
// the terminal's foreground again.
func TestTerminalSuspend(t *testing.T) {
	dir := t.TempDir()
	term := startOnTerminal(t, dir, "L", "--", "sh", "-c", `echo $$ > pid; touch ready; read x; echo "got $x"`)
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	command := readInt(t, filepath.Join(dir, "pid"))
	term.write("\x1a")
	pid := term.cmd.Process.Pid
	waitFor(t, "nfsflock to stop", func() bool { return processState(pid) == "T" })
	if state := processState(command); state != "T" {
		t.Errorf("the command's state while nfsflock is stopped = %q; want T, stopped", state)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	term.write("again\n")
	term.waitOutput("got again")
	if code := term.wait(); code != 0 {
		t.Errorf("nfsflock after ^Z and SIGCONT = %d, showing %q; want 0", code, term.output())
	}
}

// When nfsflock is continued after ^Z and finds that its lock was broken
// while it was suspended, it does not continue the command, which would
// run without the lock until the next refresh (seconds away with -l 30),
// but ends it: exit 70.
func TestTerminalSuspendLostLock(t *testing.T) {
	dir := t.TempDir()
	term := startOnTerminal(t, dir, "-l", "30", "-k", "0.2", "L", "--", "sh", "-c", `touch ready; read x; echo "$x" > ran`)
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x1a")
	pid := term.cmd.Process.Pid
	waitFor(t, "nfsflock to stop", func() bool { return processState(pid) == "T" })
	if code, out, stderr := run(t, dir, "break", "--force", "L"); code != 0 || !strings.Contains(out, "broke") {
		t.Fatalf("break --force L while the holder is suspended = %d, %q, stderr %q; want 0, broke", code, out, stderr)
	}
	if code, _, stderr := run(t, dir, "-n", "L", "true"); code != 0 {
		t.Fatalf("nfsflock -n L true after the break = %d, stderr %q; want 0", code, stderr)
	}
	// Input that the command would read at once, were it continued.
	term.write("again\n")
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := term.wait(); code != exitLost {
		t.Errorf("nfsflock continued after its lock was lost = %d, showing %q; want %d", code, term.output(), exitLost)
	}
	if exists(filepath.Join(dir, "ran")) {
		t.Error("the command was continued after the lock was lost")
	}
}

// ^Z stops the command with nfsflock even when standard input is not the
// terminal: the command's group gets the terminal's foreground all the
// same, as a shell's job would, so that the terminal's ^Z reaches it.
// Before, nfsflock alone stopped, and the command ran on unrefreshed.
func TestTerminalSuspendInputRedirected(t *testing.T) {
	dir := t.TempDir()
	term := startProgramOnTerminal(t, dir, true, binary, "L", "--", "sh", "-c", `echo $$ > pid; touch ready; while :; do sleep 0.05; done`)
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	command := readInt(t, filepath.Join(dir, "pid"))
	term.write("\x1a")
	pid := term.cmd.Process.Pid
	polls := 0
	waitFor(t, "nfsflock to stop", func() bool {
		if polls++; polls == 500 { // 5 s: say what is going on, should it hang
			_, group, foreground := shellState(command)
			t.Logf("nfsflock's state %s; the command's %s, in group %d; the terminal's foreground group %d; the terminal shows %q",
				processState(pid), processState(command), group, foreground, term.output())
		}
		return processState(pid) == "T"
	})
	waitFor(t, "the command to stop with nfsflock", func() bool { return processState(command) == "T" })
	term.write("\x03") // to the command once it runs again
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := term.wait(); code != 128+int(syscall.SIGINT) {
		t.Errorf("nfsflock after ^Z, SIGCONT and ^C = %d, showing %q; want %d", code, term.output(), 128+int(syscall.SIGINT))
	}
}

// shellState returns the state letter and process group of process pid,
// and the foreground group of its terminal, from /proc/pid/stat.
func shellState(pid int) (state string, pgrp, tpgid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0
	}
	// state ppid pgrp session tty_nr tpgid ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 6 {
		return "", 0, 0
	}
	pgrp, _ = strconv.Atoi(f[2])
	tpgid, _ = strconv.Atoi(f[5])
	return f[0], pgrp, tpgid
}

// ^Z stops nfsflock's whole process group, as it stops a job: run from a
// script, the script stops too, and so its caller sees the job stop.
// Before, nfsflock stopped alone, and the script waited for it for ever.
func TestTerminalSuspendStopsScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	term := startProgramOnTerminal(t, dir, false, "bash", "-c", `"$NFSFLOCK" L -- sh -c 'touch ready; read x; echo "got $x"'; echo "nfsflock exited $?"`)
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x1a")
	script := term.cmd.Process.Pid
	waitFor(t, "the script to stop with nfsflock", func() bool {
		state, _, _ := shellState(script)
		return state == "T"
	})
	term.write("again\n")
	if err := syscall.Kill(-script, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	term.waitOutput("got again")
	term.waitOutput("nfsflock exited 0")
	if code := term.wait(); code != 0 {
		t.Errorf("the script = %d, showing %q; want 0", code, term.output())
	}
}

// Under a shell's job control (bash's set -m): nfsflock started in the
// background, whose command reads the terminal, stops as a job (the
// command's read stops it) and runs on once brought to the foreground,
// with the command given the terminal. Before, the command stayed stopped
// and the terminal's input went to the shell after nfsflock gave up.
func TestTerminalBackgroundThenForeground(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	term := startProgramOnTerminal(t, dir, false, "bash", "-c", `set -m
"$NFSFLOCK" L -- sh -c 'touch ready; read x; echo "got $x"' &
until [ -e ready ] && [ -n "$(jobs -s)" ]; do sleep 0.05; done
echo "job stopped"
fg >/dev/null
echo "fg returned $?"`)
	term.waitOutput("job stopped")
	term.write("hello\n")
	term.waitOutput("got hello")
	term.waitOutput("fg returned 0")
	if code := term.wait(); code != 0 {
		t.Errorf("the shell = %d, showing %q; want 0", code, term.output())
	}
}

// In an interactive shell: nfsflock suspended by ^Z and continued in the
// background (bg) leaves the terminal to the shell when its command ends.
// Before, it took the terminal's foreground for its own group, gone a
// moment later, and the shell, reading the terminal, lost it and exited.
func TestTerminalBackgroundKeepsShellForeground(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	term := startProgramOnTerminal(t, dir, false, "bash", "--norc", "--noprofile", "-i")
	term.write(`PS1='$ '; set -b; "$NFSFLOCK" L -- sh -c 'touch ready; sleep 0.5; touch done'` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x1a")
	term.waitOutput("Stopped")
	term.write("bg\n")
	waitFor(t, "the command to end in the background", func() bool { return exists(filepath.Join(dir, "done")) })
	term.write("jobs; echo still-here\n")
	term.waitOutput("Done")
	term.waitOutput("still-here")
	term.write("exit\n")
	if code := term.wait(); code != 0 {
		t.Errorf("the shell = %d, showing %q; want 0", code, term.output())
	}
}
