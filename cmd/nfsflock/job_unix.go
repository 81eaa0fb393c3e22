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

// relayedSignals are passed on to the command's process group.
var relayedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP}

// A job is the command, running as the leader of its own process group.
type job struct {
	pid int // also the process group id
	// tty is the terminal whose foreground the command's group was given,
	// or -1. A command in a background group would stop as soon as it read
	// the terminal, and the terminal's ^C would reach nfsflock instead.
	tty int

	exited chan struct{} // closed once the command has ended and been reaped
	status int           // its exit status, 128+N for signal N; set before exited closes
	err    error         // an error from waiting, set before exited closes
	stops  jobStops
}

// startJob starts the command in a new process group, in the terminal's
// foreground if nfsflock is there itself, with the environment env. Where
// the system has a parent-death signal, the command gets SIGKILL if
// nfsflock dies, so that it never runs on without the lock, which nobody
// refreshes then.
func startJob(prog string, argv, env []string) (*job, error) {
	tty := foregroundTerminal()
	attr := &syscall.SysProcAttr{Setpgid: true}
	if tty >= 0 {
		attr.Foreground, attr.Ctty = true, tty
	}
	setDeathSignal(attr, unix.SIGKILL)
	j := &job{tty: tty, exited: make(chan struct{})}
	j.stops.changed = make(chan struct{}, 1)
	started := make(chan error)
	go j.run(prog, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	}, started)
	if err := <-started; err != nil {
		return nil, startError{err}
	}
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

// foregroundTerminal returns the descriptor of the terminal on standard
// input if nfsflock's process group is its foreground, else -1.
func foregroundTerminal() int {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return -1
	}
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	if pgrp != ownGroup() {
		return -1
	}
	return fd
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
	if j.tty >= 0 {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, ownGroup())
	}
}

// jobControl reports whether the command was given the terminal. Then,
// when it is stopped (^Z, or reading the terminal from the background),
// nfsflock stops too, so that the shell sees its job stop.
func (j *job) jobControl() bool { return j.tty >= 0 }

// suspend takes the terminal back from the stopped command and stops
// nfsflock. It returns once nfsflock is continued: it waits for the
// SIGCONT, since kill returns before the SIGSTOP that nfsflock sends
// itself has stopped it (another thread may be the one that takes it).
func (j *job) suspend() {
	continued := make(chan os.Signal, 1)
	signal.Notify(continued, unix.SIGCONT)
	defer signal.Stop(continued)
	unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, ownGroup())
	unix.Kill(unix.Getpid(), unix.SIGSTOP)
	<-continued
}

// resume continues the command, in the terminal's foreground if nfsflock
// was continued there.
func (j *job) resume() {
	if pgrp, err := unix.IoctlGetInt(j.tty, unix.TIOCGPGRP); err == nil && pgrp == ownGroup() {
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
