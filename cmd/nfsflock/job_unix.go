//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// relayedSignals (SIGINT, SIGTERM, SIGHUP and SIGQUIT) are passed on to
// the command's process group.
var relayedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// stopSignals are the stop signals that a relay catches; tstpSignal is
// ^Z's, which it passes on to the command.
var (
	stopSignals           = []os.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}
	tstpSignal  os.Signal = unix.SIGTSTP
)

// shellAbove reports whether a shell's job control can continue nfsflock
// once it stops: it has a controlling terminal, its process group is not
// its session's own (ssh -t, a container's console, exec from a login
// shell), and, where /proc tells, not orphaned either (detached, as by
// "( nfsflock ... & )"): nobody could continue such a group.
func shellAbove() bool {
	tty := controllingTerminal()
	if tty < 0 {
		return false
	}
	unix.Close(tty)
	return groupContinuable()
}

// groupContinuable is shellAbove for a process that has a controlling
// terminal: its process group is neither its session's own nor orphaned.
// It is judged anew at each stop, since a group is orphaned once the
// shell above it exits.
func groupContinuable() bool {
	sid, _ := unix.Getsid(0)
	return ownGroup() != sid && !orphaned()
}

// orphaned reports whether nfsflock's process group is orphaned, as far as
// /proc tells: the first of its ancestors outside the group (it and the
// processes between it and nfsflock being in the group) is not in
// nfsflock's session. Without /proc it reports false.
func orphaned() bool {
	pgrp := ownGroup()
	sid, _ := unix.Getsid(0)
	pid := unix.Getppid()
	for range 64 {
		ppid, ppgrp, psid, ok := procStat(pid)
		if !ok {
			return false
		}
		if ppgrp != pgrp {
			return psid != sid
		}
		pid = ppid
	}
	return false
}

// procStat reads the parent, process group and session of process pid
// from /proc.
func procStat(pid int) (ppid, pgrp, sid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	// state ppid pgrp session ...
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	sid, err3 := strconv.Atoi(f[3])
	return ppid, pgrp, sid, err1 == nil && err2 == nil && err3 == nil
}

// stopSelf stops nfsflock, with SIGSTOP (it catches the other stop
// signals), and returns once it is continued: it waits for the SIGCONT,
// since kill returns before the stop takes nfsflock.
func stopSelf() {
	continued := make(chan os.Signal, 1)
	signal.Notify(continued, unix.SIGCONT)
	defer signal.Stop(continued)
	unix.Kill(unix.Getpid(), unix.SIGSTOP)
	<-continued
}

// A job is the command, running as the leader of its own process group.
type job struct {
	pid int // also the process group id
	// tty is nfsflock's controlling terminal, open, or -1 where it has
	// none.
	tty int
	// handsTerminal says that standard input and output are terminals:
	// nfsflock then gives the terminal's foreground to the command's group
	// whenever it has it itself, so that the command can read it and gets
	// ^C and ^Z. A command whose input is not the terminal (a script's
	// background job, whose input is /dev/null) or whose output goes
	// elsewhere (through a pipe to a pager, which reads the terminal)
	// stays in the background until it stops by reading or writing the
	// terminal: then wantsTerminal says to give it the terminal with the
	// job's next continue in the foreground.
	handsTerminal, wantsTerminal bool
	// shellAbove says that a shell's job control can continue nfsflock
	// once it stops (see the function shellAbove).
	shellAbove bool
	// ownStop tells the relay of a stop signal that suspend sends
	// nfsflock's own process group; nil without a relay.
	ownStop func()

	exited chan struct{} // closed once the command has ended and been reaped
	status int           // its exit status, 128+N for signal N; set before exited closes
	err    error         // an error from waiting, set before exited closes
	stops  jobStops
	wd     *watchdog // ends the group if nfsflock dies; nil if it could not start
	// foreground is the ticker of stops.foreground, or nil.
	foreground *time.Ticker
}

// foregroundCheck is how often nfsflock looks whether a shell's fg has
// given its group the terminal, to pass it on to the command.
const foregroundCheck = 100 * time.Millisecond

// startJob starts the command in a new process group, in the foreground
// of nfsflock's controlling terminal if nfsflock is there itself and its
// standard input is a terminal, with the environment env. If
// nfsflock dies, its watchdog ends the command's group with SIGKILL, so
// that nothing of it runs on without the lock, which nobody refreshes
// then; and where the system has a parent-death signal, the command gets
// SIGKILL too, should the watchdog be missing. Once nfsflock has dealt
// with the group, it dismisses the watchdog (dismiss).
func startJob(prog string, argv, env []string) (*job, error) {
	tty := controllingTerminal()
	j := &job{
		tty:           tty,
		handsTerminal: tty >= 0 && term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())),
		shellAbove:    tty >= 0 && groupContinuable(),
		exited:        make(chan struct{}),
		wd:            startWatchdog(),
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if j.handsTerminal && foregroundGroup(tty) == ownGroup() {
		attr.Foreground, attr.Ctty = true, tty
	}
	setDeathSignal(attr, unix.SIGKILL)
	j.stops.changed = make(chan struct{}, 1)
	started := make(chan error)
	go j.run(prog, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	}, started)
	if err := <-started; err != nil {
		if attr.Foreground && foregroundGroup(tty) != ownGroup() {
			// The failed start's child took the terminal for a group
			// that is gone: take it back, for a retry (a script without
			// #!) and for the shell.
			signal.Ignore(unix.SIGTTOU)
			unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, ownGroup())
			signal.Reset(unix.SIGTTOU)
		}
		j.dismiss()
		j.wd.wait()
		return nil, startError{err}
	}
	if j.shellAbove {
		// A continue in the foreground (fg) gives the command the
		// terminal. (^Z that reaches nfsflock goes to the command through
		// the relay.)
		j.stops.signals = make(chan os.Signal, 1)
		signal.Notify(j.stops.signals, unix.SIGCONT)
		if j.handsTerminal {
			j.foreground = time.NewTicker(foregroundCheck)
			j.stops.foreground = j.foreground.C
		}
	}
	if tty >= 0 {
		// To take the terminal back from the background. Ignored only now:
		// the command would have inherited it.
		signal.Ignore(unix.SIGTTOU)
	}
	return j, nil
}

// run starts the command (behind a gate, see startGated, which tells the
// watchdog its group before it runs), reports on started whether it did,
// and waits for it to end. Linux sends the parent-death signal when the
// thread that started the command ends, not the process, and a thread
// ends when a goroutine locked to it returns (go.dev/issue/27505): run
// keeps its thread locked to itself until the command has been reaped, so
// that no other goroutine runs there and the thread ends only with
// nfsflock.
func (j *job) run(prog string, argv []string, attr *os.ProcAttr, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, err := startGated(j.wd, prog, argv, attr)
	if errors.Is(err, errGateFailed) {
		// As where there is no watchdog, but told the group at once.
		pid, err = startGated(nil, prog, argv, attr)
		if err == nil {
			j.wd.guard(pid)
		}
	}
	if err != nil {
		started <- err
		return
	}
	// The job waits for the process itself, to see it stop too.
	j.pid = pid
	started <- nil
	j.reap()
}

// controllingTerminal opens nfsflock's controlling terminal, whatever its
// standard input is. It returns -1 where nfsflock has none.
func controllingTerminal() int {
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if !term.IsTerminal(fd) {
		unix.Close(fd)
		return -1
	}
	return fd
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
			j.stops.record(event == waitStopped, syscall.Signal(status))
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
	if j.stops.signals != nil {
		signal.Stop(j.stops.signals)
	}
	if j.foreground != nil {
		j.foreground.Stop()
	}
	j.wd.dismiss()
	if j.tty >= 0 {
		unix.Close(j.tty)
		j.tty = -1
	}
}

// waitWatchdog waits, for a second at most, for the dismissed watchdog to
// exit.
func (j *job) waitWatchdog() { j.wd.wait() }

// stopKind says how supervise deals with a stop of the command by sig.
// A stop from the terminal (^Z, or the terminal read or written from the
// background) is the job's, under a shell's job control: nfsflock stops
// too, with its own process group, so that the shell sees the job stop.
// So is a stop by SIGSTOP while the command's group has the terminal's
// foreground, as when an inner nfsflock suspends. Where no shell could
// continue nfsflock, ^Z is ignored, as the system ignores it for nfsflock
// there. Any other stop (SIGSTOP of a command in the background, from a
// debugger or a scheduler, which may continue the command behind
// nfsflock's back) is the command's alone, and nfsflock keeps its lock
// refreshed meanwhile, for the lifetime at most.
//
// A stop from reading or writing the terminal also says that the command
// wants the terminal (wantsTerminal).
func (j *job) stopKind(sig syscall.Signal) stopKind {
	if sig == unix.SIGTTIN || sig == unix.SIGTTOU {
		j.wantsTerminal = true
	}
	switch {
	case sig == unix.SIGSTOP && j.shellAbove && foregroundGroup(j.tty) == j.pid && groupContinuable():
		// A stop of the terminal's foreground job, as an inner nfsflock
		// stops itself (it catches the other stop signals).
		return stopJob
	case !slices.Contains(stopSignals, os.Signal(sig)):
		return stopLimited
	case j.shellAbove && groupContinuable():
		return stopJob
	case sig == unix.SIGTSTP && j.tty >= 0:
		return stopIgnored
	}
	return stopLimited
}

// ignoreStop continues the command's group, stopped by a ^Z that nobody
// could have continued.
func (j *job) ignoreStop() { j.signalGroup(unix.SIGCONT) }

// jobSignal handles a job-control signal that nfsflock got while the
// command runs: a continue in the terminal's foreground (fg of a job that
// runs in the background) gives the command the terminal, if nfsflock
// hands it.
func (j *job) jobSignal(os.Signal) { j.handTerminal() }

// handTerminal gives the command's group the terminal if nfsflock's group
// has it and nfsflock hands the terminal, or the command asked for it.
func (j *job) handTerminal() {
	if (j.handsTerminal || j.wantsTerminal) && foregroundGroup(j.tty) == ownGroup() {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, j.pid)
	}
}

// suspend freezes the whole command's group (SIGSTOP: its leader's stop
// may not have stopped the rest, which may ignore ^Z), takes the terminal
// back from it, if it has it, and stops nfsflock's own process group, as
// ^Z would have: the rest of a pipeline or the script that runs nfsflock,
// with SIGTTIN, which another nfsflock there catches to freeze its own
// command; and nfsflock itself, with SIGSTOP. It returns once nfsflock is
// continued; supervise then confirms the lock before resume.
func (j *job) suspend() {
	j.signalGroup(unix.SIGSTOP)
	if foregroundGroup(j.tty) == j.pid {
		unix.IoctlSetPointerInt(j.tty, unix.TIOCSPGRP, ownGroup())
	}
	if j.ownStop != nil {
		j.ownStop()
	}
	unix.Kill(0, unix.SIGTTIN)
	stopSelf()
}

// resume continues the command, in the terminal's foreground if nfsflock
// was continued there and hands the terminal (handTerminal).
func (j *job) resume() {
	j.handTerminal()
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
