//go:build unix

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"

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
// An error executing the command comes back through a second pipe, which
// the copy closes on a successful exec, as Go's own StartProcess learns
// it; so errors read as they would without the gate.

// envGate marks, in its environment, a copy of nfsflock started as a
// gate.
const envGate = "NFSFLOCK_GATE"

// gateName is the gate's argv[0].
const gateName = "nfsflock-exec"

// The gate's descriptors: the command, from nfsflock, and the status of
// its exec, to nfsflock.
const (
	gateSpecFD   = 3
	gateStatusFD = 4
)

func init() {
	if os.Getenv(envGate) == "1" && len(os.Args) == 1 && os.Args[0] == gateName {
		os.Exit(passGate())
	}
}

// startGated starts prog with argv and attr, behind a gate if the
// watchdog wd runs, and tells wd the new process's group before the
// command runs. It returns once the gate has executed the command, or
// failed to: a gate stopped by SIGSTOP holds it until continued.
func startGated(wd *watchdog, prog string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	if wd == nil {
		return os.StartProcess(prog, argv, attr)
	}
	if len(attr.Files) != gateSpecFD {
		panic("startGated: the gate's pipes must follow the standard three files")
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, &os.PathError{Op: "fork/exec", Path: prog, Err: err}
	}
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return nil, &os.PathError{Op: "fork/exec", Path: prog, Err: err}
	}
	defer statusR.Close()
	gateAttr := *attr
	gateAttr.Files = []*os.File{attr.Files[0], attr.Files[1], attr.Files[2], specR, statusW}
	gateAttr.Env = []string{envGate + "=1"}
	if v, ok := os.LookupEnv("GORACE"); ok {
		gateAttr.Env = append(gateAttr.Env, "GORACE="+v)
	}
	p, err := os.StartProcess(wd.exe, []string{gateName}, &gateAttr)
	specR.Close()
	statusW.Close()
	if err != nil {
		return nil, err
	}
	guardDelay()
	wd.guard(p.Pid)
	// The gate reads the whole of it before anything else; should it be
	// gone, the status below says why.
	env := attr.Env
	if env == nil {
		env = os.Environ() // as os.StartProcess does
	}
	specW.Write(gateSpec(prog, argv, env))
	specW.Close()
	status, _ := io.ReadAll(statusR)
	if len(status) == 0 {
		return p, nil // executed: the pipe closed with the exec
	}
	p.Wait()
	errno, perr := strconv.Atoi(string(status))
	if perr != nil {
		return nil, &os.PathError{Op: "fork/exec", Path: prog, Err: errors.New(string(status))}
	}
	return nil, &os.PathError{Op: "fork/exec", Path: prog, Err: syscall.Errno(errno)}
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

// passGate is the gate's work: read the command, then execute it. It
// returns the gate's exit status where it cannot: 0 if nfsflock sent no
// command, 127 after reporting an exec's error.
func passGate() int {
	// A stop from the terminal (^Z) while the gate waits would stop it
	// before the command runs, and nfsflock, waiting for the exec, with
	// it. The gate catches those signals, dropping them, as nfsflock does
	// (see stopSignals): they are at their default in the gate, and are so
	// again in the command, since an exec resets what a process catches.
	signal.Notify(make(chan os.Signal, 1), stopSignals...)
	f := os.NewFile(gateSpecFD, "gate")
	spec, err := io.ReadAll(f)
	f.Close()
	prog, argv, env, ok := parseGateSpec(spec)
	if err != nil || !ok {
		return 0 // nfsflock is gone, or gave up: nothing runs
	}
	unix.CloseOnExec(gateStatusFD)
	err = unix.Exec(prog, argv, env)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EINVAL
	}
	unix.Write(gateStatusFD, []byte(strconv.Itoa(int(errno))))
	return 127
}
