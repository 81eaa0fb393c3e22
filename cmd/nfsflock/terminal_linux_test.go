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
	master, slave := openPTY(t)
	// Closed once the program has it, so that reading the master ends
	// when the program and what it started have all closed theirs.
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
	fields := statFields(procStatPath(pid))
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

// startShellOnTerminal starts an interactive bash as the session leader
// of a terminal, to run nfsflock as a job under its job control, as a user
// does. It reports job changes at once (set -b). It skips without bash.
func startShellOnTerminal(t *testing.T, dir string) *terminal {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	term := startProgramOnTerminal(t, dir, false, "bash", "--norc", "--noprofile", "-i")
	term.write("PS1='$ '; set -b\n")
	return term
}

// exitShell ends the shell on term, which must exit 0.
func (term *terminal) exitShell() {
	term.t.Helper()
	term.write("exit\n")
	if code := term.wait(); code != 0 {
		term.t.Errorf("the shell = %d, showing %q; want 0", code, term.output())
	}
}

// stoppedTogether waits until nfsflock (the parent of the command, whose
// pid the command wrote to file nfpid) and the command (file pid) are both
// stopped, and returns their pids.
func stoppedTogether(t *testing.T, dir string) (nfsflock, command int) {
	t.Helper()
	nfsflock = readInt(t, filepath.Join(dir, "nfpid"))
	command = readInt(t, filepath.Join(dir, "pid"))
	waitFor(t, "nfsflock and its command to stop", func() bool {
		return processState(nfsflock) == "T" && processState(command) == "T"
	})
	return nfsflock, command
}

// suspendJob runs cmdline as a job of the shell on term, waits for its
// command to say it is ready (the file ready in dir), presses ^Z, and
// waits for the shell to report the job stopped and for nfsflock and its
// command to be stopped (stoppedTogether), whose pids it returns.
func suspendJob(t *testing.T, term *terminal, dir, cmdline string) (nfsflock, command int) {
	t.Helper()
	term.write(cmdline + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x1a")
	term.waitOutput("Stopped")
	return stoppedTogether(t, dir)
}

// interruptJob presses ^C for the job in the terminal's foreground, which
// must end with status 130, and ends the shell.
func (term *terminal) interruptJob() {
	term.t.Helper()
	term.write("\x03")
	term.write("echo status=$?\n")
	term.waitOutput("status=130")
	term.exitShell()
}

// The command's part of a job: it writes its pid and nfsflock's, says it
// is ready, and sleeps, without forking.
const sleepingCommand = `echo $$ > pid; echo $PPID > nfpid; touch ready; exec sleep 600`

// ^Z stops the command and nfsflock with it, as a job, and the command
// stays stopped while nfsflock is; fg continues both, the command in the
// terminal's foreground again.
func TestTerminalSuspend(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	suspendJob(t, term, dir, `"$NFSFLOCK" L -- sh -c 'echo $$ > pid; echo $PPID > nfpid; touch ready; read x; echo "got $x"'`)
	term.write("fg\n")
	term.write("again\n")
	term.waitOutput("got again")
	term.write("echo status=$?\n")
	term.waitOutput("status=0")
	term.exitShell()
}

// When nfsflock is continued after ^Z and finds that its lock was broken
// while it was suspended, it does not continue the command, which would
// run without the lock until the next refresh (seconds away with -l 30),
// but ends it: exit 70.
func TestTerminalSuspendLostLock(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	suspendJob(t, term, dir, `"$NFSFLOCK" -l 30 -k 0.2 L -- sh -c 'echo $$ > pid; echo $PPID > nfpid; touch ready; read x; echo "$x" > ran'`)
	if code, out, stderr := run(t, dir, "break", "--force", "L"); code != 0 || !strings.Contains(out, "broke") {
		t.Fatalf("break --force L while the holder is suspended = %d, %q, stderr %q; want 0, broke", code, out, stderr)
	}
	if code, _, stderr := run(t, dir, "-n", "L", "true"); code != 0 {
		t.Fatalf("nfsflock -n L true after the break = %d, stderr %q; want 0", code, stderr)
	}
	term.write("fg; echo status=$?\n")
	term.waitOutput("status=70")
	if exists(filepath.Join(dir, "ran")) {
		t.Error("the command was continued after the lock was lost")
	}
	term.exitShell()
}

// ^Z stops the command with nfsflock even when standard input is not the
// terminal and the command's group is not in its foreground: ^Z reaches
// nfsflock, which passes it on to the command. Before, nfsflock alone
// stopped, and the command ran on unrefreshed (helper 53).
func TestTerminalSuspendInputRedirected(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	suspendJob(t, term, dir, `"$NFSFLOCK" L -- sh -c '`+sleepingCommand+`' < /dev/null`)
	term.write("fg\n")
	waitFor(t, "nfsflock's command to run again", func() bool { return processState(readInt(t, filepath.Join(dir, "pid"))) != "T" })
	term.interruptJob()
}

// ^Z, bg, fg, ^Z: the job runs in the background, comes back to the
// foreground, where the command gets the terminal again, and stops again,
// nfsflock with it. Before, fg left the terminal to nfsflock's group, and
// the second ^Z stopped nfsflock alone while the command ran on
// unrefreshed (helper 57).
func TestTerminalSuspendAfterBackground(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	_, command := suspendJob(t, term, dir, `"$NFSFLOCK" L -- sh -c '`+sleepingCommand+`'`)
	term.write("bg\n")
	waitFor(t, "the command to run in the background", func() bool { return processState(command) != "T" })
	term.write("fg\n")
	waitFor(t, "the command to have the terminal", func() bool {
		_, _, foreground := shellState(command)
		return foreground == command
	})
	term.write("\x1a")
	stoppedTogether(t, dir)
	term.write("fg\n")
	waitFor(t, "the command to run again", func() bool { return processState(command) != "T" })
	term.interruptJob()
}

// A command in the background of the terminal stopped by SIGSTOP, as a
// debugger or a scheduler stops it, is not nfsflock's job stopping: nfsflock keeps running and refreshing, so
// that whoever stopped the command may continue it. Before, nfsflock
// stopped too, and a command continued behind its back ran unrefreshed
// (helper 57).
func TestTerminalCommandStoppedByOther(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	// Its output to a file: the command runs outside the terminal's
	// foreground, where a SIGSTOP is not taken for the job's.
	term.write(`"$NFSFLOCK" L -- sh -c '` + sleepingCommand + `' > out` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	nfsflock := readInt(t, filepath.Join(dir, "nfpid"))
	command := readInt(t, filepath.Join(dir, "pid"))
	syscall.Kill(command, syscall.SIGSTOP)
	waitFor(t, "the command to stop", func() bool { return processState(command) == "T" })
	syscall.Kill(command, syscall.SIGCONT)
	waitFor(t, "the command to run again", func() bool { return processState(command) != "T" })
	if state := processState(nfsflock); state == "T" {
		t.Errorf("nfsflock's state once its command was stopped and continued by another = %q; want it running", state)
	}
	term.interruptJob()
}

// Where no shell could continue it (nfsflock leads its own session, as
// under ssh -t or as a container's first process), ^Z is ignored, as the
// system ignores it for nfsflock there: the command runs on, and ^C still
// ends it. Before, nfsflock stopped itself and its command for good
// (helper 57).
func TestTerminalSuspendWithoutShell(t *testing.T) {
	dir := t.TempDir()
	term := startOnTerminal(t, dir, "L", "--", "sh", "-c", sleepingCommand)
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	command := readInt(t, filepath.Join(dir, "pid"))
	term.write("\x1a")
	term.write("\x03")
	if code := term.wait(); code != 128+int(syscall.SIGINT) {
		t.Errorf("nfsflock after ^Z and ^C = %d, showing %q; want %d", code, term.output(), 128+int(syscall.SIGINT))
	}
	if processRunning(command) {
		t.Error("the command runs on after nfsflock ended")
	}
}

// shellState returns the state letter and process group of process pid,
// and the foreground group of its terminal, from /proc/pid/stat.
func shellState(pid int) (state string, pgrp, tpgid int) {
	f := statFields(procStatPath(pid))
	if len(f) < 6 {
		return "", 0, 0
	}
	pgrp, _ = strconv.Atoi(f[2])
	tpgid, _ = strconv.Atoi(f[5])
	return f[0], pgrp, tpgid
}

// ^Z stops nfsflock's whole process group, as it stops a job: run from a
// script, the script stops too, and so its shell sees the job stop.
// Before, nfsflock stopped alone, and the shell waited for it for ever.
func TestTerminalSuspendStopsScript(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	suspendJob(t, term, dir, `bash -c 'echo $$ > script; "$NFSFLOCK" L -- sh -c '"'"'`+sleepingCommand+`'"'"'; echo "nfsflock exited $?"'`)
	script := readInt(t, filepath.Join(dir, "script"))
	if state := processState(script); state != "T" {
		t.Errorf("the script's state = %q; want T, stopped with nfsflock", state)
	}
	term.write("fg\n")
	waitFor(t, "the command to run again", func() bool { return processState(readInt(t, filepath.Join(dir, "pid"))) != "T" })
	term.write("\x03")
	term.waitOutput("nfsflock exited 130")
	term.exitShell()
}

// A script's background job, whose standard input is /dev/null, does not
// take the terminal from the script: the script reads it. Before, the
// command of an nfsflock started so got the terminal's foreground, and
// the script's read stopped it (helper 57).
func TestTerminalScriptBackgroundJob(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`sh -c '"$NFSFLOCK" L -- sh -c "touch ready; sleep 30" & until [ -e ready ]; do sleep 0.05; done; echo ask; read x; echo "script read $x"; kill %1 2>/dev/null; kill $! 2>/dev/null; wait'` + "\n")
	term.waitOutput("ask")
	term.write("hello\n")
	term.waitOutput("script read hello")
	term.exitShell()
}

// A script without a #! line, which nfsflock runs with /bin/sh as
// execvp(3) does, runs in the terminal's foreground and reads it. Before,
// the failed exec took the terminal for a group that was gone, and the
// script then stopped when it read the terminal (helper 57).
func TestTerminalScriptWithoutShebang(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "noshebang"), []byte("read x; echo \"script got $x\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L ./noshebang; echo status=$?` + "\n")
	term.write("hi\n")
	term.waitOutput("script got hi")
	term.waitOutput("status=0")
	term.exitShell()
}

// Under a shell's job control (bash's set -m): nfsflock started in the
// background, whose command reads the terminal, stops as a job (the
// command's read stops it) and runs on once brought to the foreground,
// with the command given the terminal. Before, the command stayed stopped
// and the terminal's input went to the shell after nfsflock gave up.
func TestTerminalBackgroundThenForeground(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L -- sh -c 'touch ready; read x; echo "got $x"' &` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.waitOutput("Stopped")
	term.write("fg\n")
	term.write("hello\n")
	term.waitOutput("got hello")
	term.write("echo status=$?\n")
	term.waitOutput("status=0")
	term.exitShell()
}

// In an interactive shell: nfsflock suspended by ^Z and continued in the
// background (bg) leaves the terminal to the shell when its command ends.
// Before, it took the terminal's foreground for its own group, gone a
// moment later, and the shell, reading the terminal, lost it and exited.
func TestTerminalBackgroundKeepsShellForeground(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	// The command ends once the fifo go is opened for writing, after bg.
	// It waits in open(2), which a stop signal interrupts, and not in a
	// loop that forks: dash forks by vfork, and a ^Z that stops the child
	// before its exec leaves dash waiting for it in the kernel, where no
	// stop reaches it, so that the job never stops (one in a few runs on
	// a loaded machine). It is ready once it holds the terminal, which
	// nfsflock hands it just after the start.
	if err := syscall.Mkfifo(filepath.Join(dir, "go"), 0o644); err != nil {
		t.Fatal(err)
	}
	term.write(`"$NFSFLOCK" L -- sh -c 'until [ "$(ps -o tpgid= -p $$)" = "$(ps -o pgid= -p $$)" ]; do sleep 0.01; done; touch ready; read x < go; touch done'` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	term.write("\x1a")
	term.waitOutput("Stopped")
	term.write("bg\n")
	term.waitOutput("&")
	f, err := os.OpenFile(filepath.Join(dir, "go"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "the command to end in the background", func() bool { return exists(filepath.Join(dir, "done")) })
	term.waitOutput("Done")
	term.write("echo still-here\n")
	term.waitOutput("still-here")
	term.exitShell()
}

// ^Z while nfsflock waits for the lock stops it, as a job, though it
// catches ^Z (to pass it on to its command later): once continued it goes
// on waiting, takes the lock and runs the command.
func TestTerminalSuspendWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	holder := hold(t, dir, "L")
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L -- sh -c 'echo ran'` + "\n")
	term.waitOutput("held by pid ") // the waiting line: nfsflock catches ^Z by now
	term.write("\x1a")
	term.waitOutput("Stopped")
	holder.closeStdin()
	holder.wait()
	term.write("fg; echo status=$?\n")
	term.waitOutput("ran")
	term.waitOutput("status=0")
	term.exitShell()
}

// nfsflock running nfsflock: ^Z stops the innermost command, the inner
// nfsflock, which the outer one takes for its job's stop, and so the
// outer one too; the shell sees the job stop, and fg continues them all.
// Before, the outer nfsflock took the inner one's stop for another
// process's and kept the terminal's foreground with the stopped group
// (helper 58).
func TestTerminalSuspendNested(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	inner, _ := suspendJob(t, term, dir, `"$NFSFLOCK" L1 "$NFSFLOCK" L2 sh -c 'echo $$ > pid; echo $PPID > nfpid; touch ready; read x; echo "got $x"'`)
	outer := parentOf(t, inner)
	waitFor(t, "the outer nfsflock to stop", func() bool { return processState(outer) == "T" })
	term.write("fg\n")
	term.write("again\n")
	term.waitOutput("got again")
	term.write("echo status=$?\n")
	term.waitOutput("status=0")
	term.exitShell()
}

// parentOf returns the parent of process pid, from /proc/pid/stat.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	ppid, _, _, ok := procStat(pid)
	if !ok {
		t.Fatalf("cannot read the parent of process %d", pid)
	}
	return ppid
}

// With its output piped to a reader of the terminal (a pager), the command
// stays in the background and the reader keeps the terminal. Before, the
// command took the terminal's foreground and the reader stopped when it
// read it (helper 58).
func TestTerminalPipedToReader(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L sh -c 'echo hi; exec sleep 2' | { read -r a; read -r b < /dev/tty; echo "reader got $a $b"; }` + "\n")
	term.write("there\n")
	term.waitOutput("reader got hi there")
	term.exitShell()
}

// A command whose input is not the terminal but which reads the terminal
// itself (a password prompt) stops, as a job, and is given the terminal
// when brought to the foreground. Before, fg continued it in the
// background, where it stopped again at once, and what was typed for it
// went to the shell (helper 58).
func TestTerminalCommandReadsTerminal(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`echo data | "$NFSFLOCK" L sh -c 'read -r d; read -r y < /dev/tty; echo "command got $d $y"'` + "\n")
	term.waitOutput("Stopped")
	term.write("fg\n")
	term.write("secret\n")
	term.waitOutput("command got data secret")
	term.exitShell()
}

// SIGTTIN sent to nfsflock by another process is passed on to the command
// as ^Z, and the job stops with its command. Before, nfsflock stopped
// alone, and its command ran on unrefreshed (helper 59).
func TestTerminalStopSignalToNfsflock(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L -- sh -c '` + sleepingCommand + `'` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	syscall.Kill(readInt(t, filepath.Join(dir, "nfpid")), syscall.SIGTTIN)
	term.waitOutput("Stopped")
	stoppedTogether(t, dir)
	term.write("fg\n")
	waitFor(t, "the command to run again", func() bool { return processState(readInt(t, filepath.Join(dir, "pid"))) != "T" })
	term.interruptJob()
}

// ^Z that stops the command, but not a process of its group that ignores
// SIGTSTP: nfsflock freezes the whole group before it stops. Before, that
// process ran on while nfsflock was stopped (helper 59).
func TestTerminalSuspendFreezesGroup(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`"$NFSFLOCK" L -- sh -c '(trap "" TSTP; exec sleep 600) & echo $! > child; ` + sleepingCommand + `'` + "\n")
	waitFor(t, "the command to be ready", func() bool { return exists(filepath.Join(dir, "ready")) })
	child := readInt(t, filepath.Join(dir, "child"))
	term.write("\x1a")
	term.waitOutput("Stopped")
	stoppedTogether(t, dir)
	waitFor(t, "the process that ignores ^Z to be frozen too", func() bool { return processState(child) == "T" })
	term.write("fg\n")
	waitFor(t, "the process that ignores ^Z to run again", func() bool { return processState(child) != "T" })
	term.write("\x03")
	term.write("echo status=$?\n")
	term.waitOutput("status=130")
	syscall.Kill(child, syscall.SIGKILL)
	term.exitShell()
}

// A detached nfsflock ("( nfsflock ... & )", whose process group nobody
// could continue) whose command reads the terminal does not stop for good:
// the command keeps its lock for the lifetime at most, and is then ended.
// Before, nfsflock stopped itself, and nothing ever continued it
// (helper 60).
func TestTerminalDetachedNotStopped(t *testing.T) {
	dir := t.TempDir()
	term := startShellOnTerminal(t, dir)
	term.write(`( "$NFSFLOCK" -l 1 -k 0.2 L -- sh -c 'echo $PPID > nfpid; read x < /dev/tty' & )` + "\n")
	nfsflock := readInt(t, filepath.Join(dir, "nfpid"))
	waitFor(t, "the detached nfsflock to end its command and exit", func() bool { return !processRunning(nfsflock) })
	term.exitShell()
}
