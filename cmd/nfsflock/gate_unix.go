//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A gate holds the command back until the watchdog knows its process
// group. The watchdog learns the group from nfsflock once the command's
// process exists; a command started at once would run, and could start
// processes of its own, before that. Were nfsflock killed in between, the
// watchdog would not know what to end, and those processes would run on
// without the lock (the parent-death signal reaches the command alone).
// So where there is a watchdog, nfsflock starts, as the command's process,
// a copy of itself whose arguments read nfsflock-exec; tells the watchdog
// that process's group; then sends the copy the command's program,
// arguments and environment through a pipe, and the copy executes the
// command in its place. The process keeps its id, and so its group, its
// terminal and its parent-death signal. At the end of the pipe without
// the command (nfsflock died first), the copy exits, and nothing runs.
//
// The gate reports back through a second pipe, which its exec closes:
// gateReady just before the exec, then, if the exec fails, its errno, as
// Go's own StartProcess learns it, so that errors read as they would
// without the gate; or gateSignaled and SIGQUIT's number, for a ^\ that
// came before the command ran; or gateBad and why, for a command it could
// not read. A gate ended by a signal before it ran the command (^C: the
// gate leaves SIGINT, SIGTERM and SIGHUP to its runtime, which ends it by
// the signal) ends nfsflock as the signal would have ended the command,
// 128+N. A gate that exits with status 2 without a word failed in its
// runtime, or got ^\ before it could catch it (and dumped its
// goroutines): nfsflock reports an error and runs nothing. One that exits
// otherwise without a word is passed over, and the command starts at
// once, as where there is no watchdog: outside Linux, another nfsflock
// renamed over this one's binary runs as the gate (see selfExe).
//
// nfsflock continues the gate, should it be stopped, until its exec (or,
// where it cannot tell the gate from the command, until it reports): a
// stop that came before the gate caught the stop signals (^Z, at its very
// start), or a SIGSTOP, would hold it, and nfsflock with it, with nobody
// to continue them, since the stop was meant for a command that does not
// run yet.
//
// Both pipes take, in the gate, the descriptor numbers they have in
// nfsflock, which nfsflock cannot have inherited; the descriptors that
// nfsflock did inherit reach the command at their numbers, as they would
// without the gate (a jobserver's, systemd's sockets, 3>>log).

// envGate marks, in its environment, a copy of nfsflock started as a
// gate, and gives the numbers of its two pipes: NFSFLOCK_GATE=SPEC,STATUS.
const envGate = "NFSFLOCK_GATE"

// gateName is the gate's argv[0].
const gateName = "nfsflock-exec"

// The first byte of what a gate reports.
const (
	gateReady    = 'R'
	gateSignaled = 'S'
	gateBad      = 'E'
)

// gateNudge is how often nfsflock continues a stopped gate.
const gateNudge = 100 * time.Millisecond

// errGateFailed is a gate that ended without a word.
var errGateFailed = errors.New("the gate ended before it ran the command")

// runtimeFailed is the exit status of a Go program that the runtime ends
// (a fatal signal such as SIGQUIT, or no thread to start).
const runtimeFailed = 2

func init() {
	if v, ok := os.LookupEnv(envGate); ok && len(os.Args) == 1 && os.Args[0] == gateName {
		os.Exit(passGate(v))
	}
}

// startGated starts prog with argv and attr, behind a gate if the
// watchdog wd runs, and tells wd the new process's group before the
// command runs. It returns the process's id once the gate has executed
// the command, or the error that kept it from doing so. A gate that ends
// without a word gives errGateFailed, and has been reaped.
func startGated(wd *watchdog, prog string, argv []string, attr *os.ProcAttr) (int, error) {
	if wd == nil {
		p, err := os.StartProcess(prog, argv, attr)
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		p.Release()
		return pid, nil
	}
	startErr := func(err error) error { return &os.PathError{Op: "fork/exec", Path: prog, Err: err} }
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, startErr(err)
	}
	defer specW.Close()
	defer specR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return 0, startErr(err)
	}
	defer statusR.Close()
	defer statusW.Close()
	env := []string{fmt.Sprintf("%s=%d,%d", envGate, specR.Fd(), statusW.Fd())}
	if v, ok := os.LookupEnv("GORACE"); ok {
		env = append(env, "GORACE="+v)
	}
	pid, _, err := syscall.StartProcess(wd.exe, []string{gateName}, &syscall.ProcAttr{
		Dir:   attr.Dir,
		Env:   env,
		Files: gateFiles(attr.Files, specR.Fd(), statusW.Fd()),
		Sys:   attr.Sys,
	})
	runtime.KeepAlive(attr.Files)
	specR.Close()
	statusW.Close()
	if err != nil {
		return 0, startErr(err)
	}
	stopNudging := nudge(pid)
	defer stopNudging()
	guardDelay()
	wd.guard(pid)
	cmdEnv := attr.Env
	if cmdEnv == nil {
		cmdEnv = os.Environ() // as os.StartProcess does
	}
	// The gate reads the whole of it first; should it be gone, what it
	// reported says why.
	specW.Write(gateSpec(prog, argv, cmdEnv))
	specW.Close()
	// Nudged until its exec closes the pipe, where gateStopped tells the
	// gate from the command it becomes (a stop between its report and its
	// exec would hold it, and nfsflock); else until it reports.
	var first [1]byte
	n, _ := io.ReadFull(statusR, first[:])
	if !tellsGate {
		stopNudging()
	}
	rest, _ := io.ReadAll(statusR)
	stopNudging()
	status := append(first[:n], rest...)
	if len(status) > 0 && status[0] == gateReady && len(status) == 1 {
		return pid, nil // executed: its exec closed the pipe
	}
	ws := reapGate(pid)
	switch {
	case len(status) == 0 && ws.Signaled():
		return 0, interruptedError{ws.Signal()}
	case len(status) == 0 && ws.ExitStatus() == runtimeFailed:
		return 0, startErr(fmt.Errorf("%s failed before it could run the command (exit status %d)", gateName, runtimeFailed))
	case len(status) == 0:
		return 0, errGateFailed
	case status[0] == gateReady:
		if errno, err := strconv.Atoi(string(status[1:])); err == nil {
			return 0, startErr(syscall.Errno(errno))
		}
	case status[0] == gateSignaled:
		if sig, err := strconv.Atoi(string(status[1:])); err == nil {
			return 0, interruptedError{syscall.Signal(sig)}
		}
	}
	return 0, startErr(fmt.Errorf("%s: %q", gateName, status))
}

// gateFiles returns the gate's descriptors: the standard three files, the
// two pipes at their own numbers, spec and status, and, at the numbers
// between, what nfsflock inherited open across an exec; descriptors
// above the pipes' it keeps anyway.
func gateFiles(std []*os.File, spec, status uintptr) []uintptr {
	files := make([]uintptr, max(spec, status)+1)
	for i, f := range std {
		files[i] = f.Fd()
	}
	for i := uintptr(len(std)); i < uintptr(len(files)); i++ {
		files[i] = ^uintptr(0) // closed in the gate, as it would be at an exec
		flags, err := unix.FcntlInt(i, unix.F_GETFD, 0)
		if i == spec || i == status || err == nil && flags&unix.FD_CLOEXEC == 0 {
			files[i] = i
		}
	}
	return files
}

// nudge continues the gate pid every gateNudge while it is stopped, until
// stop is called (which may be called again).
func nudge(pid int) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(gateNudge)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if gateStopped(pid) {
					unix.Kill(pid, unix.SIGCONT)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-finished
	}
}

// reapGate waits for the gate pid, which did not become the command, to
// end.
func reapGate(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); !errors.Is(err, unix.EINTR) {
			return ws
		}
	}
}

// gateSpec encodes the command for the gate: program, argument count,
// arguments, environment count and environment entries, each ended by a
// NUL byte, which none of them can hold.
func gateSpec(prog string, argv, env []string) []byte {
	var b bytes.Buffer
	for _, s := range slices.Concat([]string{prog, strconv.Itoa(len(argv))}, argv, []string{strconv.Itoa(len(env))}, env) {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// parseGateSpec decodes what gateSpec encodes. It reports false for
// anything else, such as what a pipe cut short holds.
func parseGateSpec(b []byte) (prog string, argv, env []string, ok bool) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return "", nil, nil, false
	}
	var fields []string
	for f := range bytes.SplitSeq(b[:len(b)-1], []byte{0}) {
		fields = append(fields, string(f))
	}
	count := func(i int) (int, bool) {
		if i >= len(fields) {
			return 0, false
		}
		n, err := strconv.Atoi(fields[i])
		return n, err == nil && n >= 0 && n < len(fields)-i
	}
	nargv, ok := count(1)
	if !ok {
		return "", nil, nil, false
	}
	nenv, ok := count(2 + nargv)
	if !ok || 3+nargv+nenv != len(fields) {
		return "", nil, nil, false
	}
	return fields[0], fields[2 : 2+nargv], fields[3+nargv:], true
}

// passGate is the gate's work: read the command, then execute it. fds is
// envGate's value. It returns the gate's exit status where it cannot.
//
// It runs from init, on the main thread, which it keeps: on Linux the
// parent-death signal is the thread's that the gate started with, and an
// exec keeps it only from there.
func passGate(fds string) int {
	runtime.LockOSThread()
	// ^\ before the command runs is reported, not left to the runtime,
	// which would dump its goroutines. An exec resets it to its default.
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, unix.SIGQUIT)
	a, b, _ := strings.Cut(fds, ",")
	spec, err1 := strconv.Atoi(a)
	status, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || spec < 3 || status < 3 || spec == status {
		fmt.Fprintln(os.Stderr, "nfsflock-exec: a part of nfsflock, not to be run alone")
		return 2
	}
	// A stop from the terminal (^Z) while the gate waits would stop it
	// before the command runs, and nfsflock, waiting for it, with it. The
	// gate catches those signals, dropping them, as nfsflock does (see
	// stopSignals): they are at their default in the gate, and are so
	// again in the command, since an exec resets what a process catches.
	signal.Notify(make(chan os.Signal, 1), stopSignals...)
	report := func(b ...byte) { unix.Write(status, b) }
	f := os.NewFile(uintptr(spec), "gate")
	b2, err := io.ReadAll(f)
	f.Close()
	prog, argv, env, ok := parseGateSpec(b2)
	if err != nil || !ok {
		if len(b2) > 0 {
			report(append([]byte{gateBad}, "the command came cut short"...)...)
		}
		return 0 // or nfsflock is gone, or gave up: nothing runs
	}
	select {
	case <-quit:
		report(append([]byte{gateSignaled}, strconv.Itoa(int(unix.SIGQUIT))...)...)
		return 0
	default:
	}
	unix.CloseOnExec(status)
	report(gateReady)
	err = unix.Exec(prog, argv, env)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EINVAL
	}
	report([]byte(strconv.Itoa(int(errno)))...)
	return 127
}
