//go:build unix

package guard_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// roleEnv selects a child role when the test binary runs as another
// process of a multi-process test.
const roleEnv = "GUARD_TEST_ROLE"

// roles are what a child process can be asked to do; a role ends the
// child with its exit status.
var roles = map[string]func() int{}

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		run, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
			os.Exit(2)
		}
		os.Exit(run())
	}
	goleak.VerifyTestMain(m)
}

// child returns a command that re-runs this test binary as role, with
// env added (KEY=value pairs). The test pattern matches nothing, so only
// TestMain's role dispatch runs.
func child(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	if os.Getenv("GORACE") == "" {
		// The race detector otherwise sleeps a second before every exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = &logWriter{t: t, prefix: role}
	return cmd
}

// logWriter logs a child's stderr through the test.
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
