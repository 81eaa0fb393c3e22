//go:build linux

package flock_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// Several hosts on one filesystem: children run in UTS namespaces of their
// own (unshare --uts), each under its own hostname, so that their claims
// name different hosts, as processes on different machines would.

// onHost returns a child of role that runs with hostname host, or skips
// the test, saying why, where namespaces cannot be made.
func onHost(t *testing.T, host, role string, env ...string) *exec.Cmd {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.Missing(t, "unshare (util-linux) is not installed")
	}
	if out, err := exec.Command(unshare, "--uts", "true").CombinedOutput(); err != nil {
		testenv.Missing(t, "unshare --uts fails (%v: %s); it needs root", err, strings.TrimSpace(string(out)))
	}
	cmd := testenv.Child(t, role, env...)
	args := append([]string{unshare, "--uts", "sh", "-c", `hostname "$1" && shift && exec "$@"`, "sh", host}, cmd.Args...)
	cmd.Args = args
	cmd.Path = unshare
	return cmd
}

// TestHostsExclude: processes of three hosts exclude each other on one
// lock file, on a local disk and, where .ci/setup mounted it, over sshfs
// through two clients.
func TestHostsExclude(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: processes of two hostnames take 25 turns each, locally and across sshfs (about 15 s with sshfs); it runs without -short, as under .ci/test")
	}
	storm(t)
	const perHost, rounds = 2, 25
	dirs := map[string][2]string{"local": {t.TempDir(), ""}}
	if os.Getenv(testenv.SSHFSAEnv) != "" {
		a, b := testenv.SSHFS(t)
		dirs["sshfs"] = [2]string{a, b}
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			var cmds []*exec.Cmd
			for i, host := range []string{"host-a", "host-b", "host-c"} {
				lockDir := dir[0]
				if dir[1] != "" && i%2 == 1 {
					lockDir = dir[1] // the other client of the same directory
				}
				for range perHost {
					cmd := onHost(t, host, "counter", "LOCK="+filepath.Join(lockDir, "app.lck"),
						"DIR="+dir[0], "ROUNDS="+strconv.Itoa(rounds), "LIFETIME=1m")
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					cmds = append(cmds, cmd)
				}
			}
			waitAll(t, cmds)
			b, _ := os.ReadFile(filepath.Join(dir[0], "counter"))
			if got, want := string(b), strconv.Itoa(3*perHost*rounds); got != want {
				t.Errorf("counter = %s; want %s", got, want)
			}
		})
	}
}

// TestHostsBreak: a holder on one host dies; a process of another host
// cannot tell it is dead (State says unknown), breaks its lock once it has
// expired, and leaves claims of the dead host alone when it sweeps.
func TestHostsBreak(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "app.lck")
	holder := onHost(t, "host-a", "holder", "LOCK="+lock, "LIFETIME=300ms")
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "held ") {
		t.Fatalf("holder said %q", buf[:n])
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	// A claim host-a's dead waiter left, with a pid that is not running.
	dead := exec.Command("true")
	dead.Run()
	foreign := filepath.Join(dir, "app.lck|host-a|"+strconv.Itoa(dead.ProcessState.Pid())+"|5")
	os.WriteFile(foreign, []byte(foreign), 0o644)

	l := newLock(t, lock, flock.WithHostname("host-b"), flock.WithClockSlop(0), flock.WithDeadOwnerBreak())
	d, err := l.Details()
	if err != nil || d.Hostname != "host-a" {
		t.Fatalf("Details() = %+v, %v; want host-a's lock", d, err)
	}
	if s, _ := l.State(); s != flock.Unknown {
		t.Errorf("State() of another host's lock = %v; want unknown", s)
	}
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatalf("Acquire = %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("host-b swept a claim of host-a: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}
