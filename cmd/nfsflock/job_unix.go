//go:build unix

package main

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// relayedSignals (SIGINT, SIGTERM, SIGHUP and SIGQUIT) are passed on to
// the command's process group.
var relayedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// A job is the command, running as the leader of its own process group.
type job struct {
	pid int // also the process group id
	// tty is nfsflock's controlling terminal, open, or -1 where it has
	// none. nfsflock gives the terminal's foreground to the command's group
	// whenever it has it itself: a command in a background group would
	// stop as soon as it read the terminal, and the terminal's ^C and ^Z
	// would reach nfsflock instead.
	tty int

	exited chan struct{} // closed once the command has ended and been reaped
	status int           // its exit status, 128+N for signal N; set before exited closes
	err    error         // an error from waiting, set before exited closes
	stops  jobStops
	wd     *watchdog // ends the group if nfsflock dies; nil if it could not start
}

// startJob starts the command in a new process group, in the foreground
// of nfsflock's controlling terminal if nfsflock is there itself, with the
// environment env. If
// nfsflock dies, its watchdog ends the command's group with SIGKILL, so
// that nothing of it runs on without the lock, which nobody refreshes
// then; and where the system has a parent-death signal, the command gets
// SIGKILL too, should the watchdog be missing. Once nfsflock has dealt
// with the group, it dismisses the watchdog (dismiss).
func startJob(prog string, argv, env []string) (*job, error) {
	tty, foreground := controllingTerminal()
	attr := &syscall.SysProcAttr{Setpgid: true}
	if foreground {
		attr.Foreground, attr.Ctty = true, tty
	}
	setDeathSignal(attr, unix.SIGKILL)
	j := &job{tty: tty, exited: make(chan struct{}), wd: startWatchdog()}
	j.stops.changed = make(chan struct{}, 1)
	started := make(chan error)
	go j.run(prog, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	}, started)
	if err := <-started; err != nil {
		j.dismiss()
		return nil, startError{err}
	}
	j.wd.guard(j.pid)
	if tty >= 0 {
		// To take the terminal back from the background. Ignored only now:
		// the command would have inherited it.
		signal.Ignore(unix.SIGTTOU)
	}
	return j, nil
}

// run starts the command, reports on started whether it did, and waits
// for it to end. Linux sends the parent-death signal when the thread that
// started the command ends, not the process, and a thread ends when a
// goroutine locked to it returns (go.dev/issue/27505): run keeps its
// thread locked to itself until the command has been reaped, so that no
// other goroutine runs there and the thread ends only with nfsflock.
func (j *job) run(prog string, argv []string, attr *os.ProcAttr, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := os.StartProcess(prog, argv, attr)
	if err != nil {
		started <- err
		return
	}
	// The job waits for the process itself, to see it stop too. Release
	// forgets the pid: take it first.
	j.pid = p.Pid
	p.Release()
	started <- nil
	j.reap()
}

// controllingTerminal opens nfsflock's controlling terminal, whatever its
// standard input is (as a shell's job control goes by the terminal, not by
// where a job's input comes from), and reports whether nfsflock's process
// group is its foreground. It returns -1 where nfsflock has no controlling
// terminal.
func controllingTerminal() (fd int, foreground bool) {
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	if !term.IsTerminal(fd) {
		unix.Close(fd)
		return -1, false
	}
	return fd, foregroundGroup(fd) == ownGroup()
}

// foregroundGroup returns the foreground process group of the terminal
// tty, or -1.
func foregroundGroup(tty int) int {
	pgrp, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return pgrp
}

// ownGroup returns nfsflock's process group. (Getpgrp's signature differs
// on Solaris; Getpgid(0) has one everywhere.)
func ownGroup() int {
	pgrp, _ := unix.Getpgid(0)
	return pgrp
}

// reap waits for the command to end, and records its stops and
// continues for supervise.
func (j *job) reap() {
	defer close(j.exited)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(j.pid, &ws, waitOptions, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			j.err, j.status = err, exitFailed
			break
		}
		event, status := decodeWait(ws)
		if event == waitEnded {
			j.status = status
			break
		}
		if event != waitOther {
			j.stops.record(event == waitStopped)
		}
	}
	// The terminal goes back to nfsflock's group only from the command's:
	// nfsflock may have been put in the background meanwhile (^Z, bg), and
	// the shell has it then.
	if j.tty >= 0 && foregroundGroup(j.tty) == j.pid {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, ownGroup())
	}
}

// dismiss tells the watchdog that nfsflock has dealt with the command's
// group: the command has ended, and what it left running in the
// background, if anything, may run on. It also closes the terminal.
func (j *job) dismiss() {
	j.wd.dismiss()
	if j.tty >= 0 {
		unix.Close(j.tty)
		j.tty = -1
	}
}

// jobControl reports whether nfsflock has a controlling terminal. Then,
// when the command is stopped (^Z, or reading the terminal from the
// background), nfsflock stops too, with its own process group, so that the
// shell sees its job stop.
func (j *job) jobControl() bool { return j.tty >= 0 }

// suspend takes the terminal back from the stopped command, if it has it,
// and stops nfsflock's own process group, as ^Z would have: nfsflock, and
// whatever shares its group, such as the rest of a pipeline or the script
// that runs nfsflock. It returns once nfsflock is continued: it waits for
// the SIGCONT, since kill returns before the SIGSTOP has stopped nfsflock
// (another thread may be the one that takes it).
func (j *job) suspend() {
	continued := make(chan os.Signal, 1)
	signal.Notify(continued, unix.SIGCONT)
	defer signal.Stop(continued)
	if foregroundGroup(j.tty) == j.pid {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, ownGroup())
	}
	unix.Kill(0, unix.SIGSTOP)
	<-continued
}

// resume continues the command, in the terminal's foreground if nfsflock
// was continued there.
func (j *job) resume() {
	if foregroundGroup(j.tty) == ownGroup() {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, j.pid)
	}
	j.signalGroup(unix.SIGCONT)
}

// signalGroup sends sig to the command's process group.
func (j *job) signalGroup(sig unix.Signal) error {
	if j.pid <= 1 {
		// Never a group of ours: -1 would signal every process we may.
		return unix.ESRCH
	}
	return unix.Kill(-j.pid, sig)
}

// signal relays sig to the command's process group.
func (j *job) signal(sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		j.signalGroup(s)
	}
}

// terminate asks the command's process group to end, waking it if it is
// stopped.
func (j *job) terminate() {
	j.signalGroup(unix.SIGTERM)
	j.signalGroup(unix.SIGCONT)
}

// kill ends whatever is left of the command's process group.
func (j *job) kill() {
	j.signalGroup(unix.SIGKILL)
}

// groupAlive reports whether any process of the command's group is left.
func (j *job) groupAlive() bool {
	err := j.signalGroup(0)
	return err == nil || errors.Is(err, unix.EPERM)
}
