package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ChildEnv carries the role of a child process started by [Child].
const ChildEnv = "NFSFLOCK_TEST_CHILD"

// Dispatch runs the role that [Child] started this process in, if any,
// and exits with the status it returns; in the test's own process it
// returns at once. Call it first in TestMain, with every role the
// package's tests start.
func Dispatch(roles map[string]func() int) {
	role := os.Getenv(ChildEnv)
	if role == "" {
		return
	}
	run, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		os.Exit(2)
	}
	os.Exit(run())
}

// Child returns a command that re-runs the test binary as role, which
// [Dispatch] then runs instead of any test, with env (KEY=value pairs)
// added to this process's environment. The child's standard error is
// logged through t, a line at a time, so t's test must wait for the child
// before it ends.
func Child(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testenv.Child: finding the test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), ChildEnv+"="+role)
	if os.Getenv("GORACE") == "" {
		// The race detector otherwise sleeps a second before every exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = &logWriter{t: t, prefix: role}
	return cmd
}

// logWriter logs what a child writes, prefixed with its role.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Logf("%s: %s", w.prefix, line)
	}
	return len(p), nil
}
