package testenv

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// RoleEnv carries the role of a child process started by [Command].
const RoleEnv = "NFSFLOCK_TESTENV_ROLE"

// Role returns the role that [Command] started this process in, or "" in
// the test's own process. A test that starts children begins with
//
//	if role := testenv.Role(); role != "" { ...act the role...; return }
//
// so that a child does its part, reports failure through t like any
// test, and never starts children itself.
func Role() string { return os.Getenv(RoleEnv) }

// Command returns a command that re-runs the test binary for t's test
// alone (-test.run=^Name$, subtests spelled out), with RoleEnv set to role
// and env (KEY=value pairs) added to this process's environment. The child
// exits 0 if the test passed and 1 if it failed. Command fails t if the
// test binary cannot be found, or if role is empty.
func Command(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	if role == "" {
		t.Fatal("testenv.Command: empty role")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testenv.Command: finding the test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run="+RunPattern(t.Name()), "-test.count=1")
	cmd.Env = append(os.Environ(), RoleEnv+"="+role)
	if os.Getenv("GORACE") == "" {
		// The race detector otherwise sleeps a second before every exit,
		// as in [Child].
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// RunPattern returns the -test.run pattern that matches the test named
// name (as [testing.T.Name] gives it) and nothing else: ^A$/^B$ for a
// subtest B of A.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
