//go:build unix

package main

import (
	"bufio"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A watchdog is a second copy of nfsflock that ends the command's whole
// process group, with SIGKILL, when nfsflock dies without a chance to end
// it (SIGKILL, a crash): nobody refreshes the lock then, and another
// process takes it once it expires. A parent-death signal reaches only the
// command itself, and not on every system, nor a setuid command; the
// shell of -c, a script or make would leave their children running
// without the lock. The watchdog learns of nfsflock's death as the end of a
// pipe whose only writer is nfsflock: the kernel closes it whatever ends
// nfsflock.
//
// The watchdog runs in a process group of its own, with no terminal and
// "/" as its directory, ignoring the signals that a terminal or a
// command's group may get. It shows as nfsflock-watchdog. A process that
// has left the command's group (setsid, or a group of its own) is not
// reached.
type watchdog struct {
	exe  string // the binary it runs, which a gate runs too
	proc *os.Process
	w    *os.File // the pipe's writing end; nfsflock's alone
}

// envWatchdog marks, in its environment, a copy of nfsflock started as a
// watchdog.
const envWatchdog = "NFSFLOCK_WATCHDOG"

// watchdogName is the watchdog's argv[0].
const watchdogName = "nfsflock-watchdog"

func init() {
	if os.Getenv(envWatchdog) == "1" && len(os.Args) == 1 && os.Args[0] == watchdogName {
		os.Exit(watch(os.NewFile(3, "watchdog pipe")))
	}
}

// startWatchdog starts a watchdog, before the command, so that it is
// ready once the command runs. It returns nil if it cannot: the command
// still runs, with the parent-death signal alone.
func startWatchdog() *watchdog {
	exe := selfExe()
	if exe == "" {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil
	}
	defer null.Close()
	p, err := os.StartProcess(exe, []string{watchdogName}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{envWatchdog + "=1"},
		Files: []*os.File{null, null, null, r},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		w.Close()
		return nil
	}
	return &watchdog{exe: exe, proc: p, w: w}
}

// selfExe returns a path that runs nfsflock's own binary: its path where
// that still names it (so that ps shows the watchdog as nfsflock), or
// /proc/self/exe on Linux once it is removed or replaced (a package
// upgrade renames a new binary over it, which may not speak this one's
// protocol). It returns "" where there is none.
func selfExe() string {
	exe, err := os.Executable()
	fi, serr := os.Stat(exe)
	if err == nil && serr == nil && fi.Mode().IsRegular() {
		if runtime.GOOS != "linux" {
			return exe
		}
		if self, err := os.Stat("/proc/self/exe"); err != nil || os.SameFile(fi, self) {
			return exe
		}
	}
	if runtime.GOOS != "linux" {
		return ""
	}
	return "/proc/self/exe"
}

// guard tells the watchdog the command's process group, which it ends if
// nfsflock dies from now on: the last one it was told.
func (wd *watchdog) guard(pgid int) {
	if wd != nil {
		wd.w.WriteString(strconv.Itoa(pgid) + "\n")
	}
}

// dismiss tells the watchdog that nfsflock has dealt with the command's
// group; it ends nothing from then on, and exits.
func (wd *watchdog) dismiss() {
	if wd == nil || wd.w == nil {
		return
	}
	wd.w.WriteString("done\n")
	wd.w.Close()
	wd.w = nil
}

// wait waits for the dismissed watchdog to exit, for up to a second (a
// watchdog stopped by someone exits once continued), so that none
// outlives nfsflock as a rule.
func (wd *watchdog) wait() {
	if wd == nil {
		return
	}
	exited := make(chan struct{})
	go func() {
		wd.proc.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(time.Second):
		// The goroutine ends with nfsflock, which exits now.
	}
}

// watch is the watchdog's work: read the command's process group from r
// (again, should the command have started anew), until "done"; at the
// end of r without it, end the group. It returns the watchdog's exit
// status.
func watch(r *os.File) int {
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPIPE)
	in := bufio.NewReader(r)
	pgid := 0
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		if line == "done\n" {
			return 0
		}
		n, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
		if err != nil || n <= 1 {
			return 2
		}
		pgid = n
	}
	if pgid == 0 {
		return 0 // nfsflock ended before the command started
	}
	// nfsflock is gone. The group's id is not reused while a process of
	// the group lives, and a new group could take it only after the
	// system's process ids had wrapped around since nfsflock died.
	unix.Kill(-pgid, unix.SIGKILL)
	return 0
}
