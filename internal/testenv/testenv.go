// Package testenv finds, for tests, the environment that .ci/setup
// prepares (sshfs mounts, Python's flufl.lock) and re-runs the test binary
// as child processes.
//
// A test whose environment is missing is skipped with a message that says
// what to set up, unless the environment variable CI is "true": there it
// fails, so that CI cannot pass by skipping.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that .ci/setup writes.
const (
	// SSHFSAEnv and SSHFSBEnv name two sshfs mounts of one directory: two
	// clients of one network filesystem, each with its own caches.
	SSHFSAEnv = "NFSFLOCK_SSHFS_A"
	SSHFSBEnv = "NFSFLOCK_SSHFS_B"
	// SSHFSServerEnv names the directory that those two mounts show, on
	// the server's own disk: a process there locks as an NFS server's own
	// processes do, beside its clients.
	SSHFSServerEnv = "NFSFLOCK_SSHFS_SERVER"
	// SSHFSNoLinkEnv names an sshfs mount made with -o disable_hardlink,
	// on which link(2) fails.
	SSHFSNoLinkEnv = "NFSFLOCK_SSHFS_NOLINK"
	// PythonEnv overrides the Python interpreter that must import
	// flufl.lock; the default is DefaultPython.
	PythonEnv = "NFSFLOCK_PYTHON"
)

// DefaultPython is Debian's interpreter, for which python3-flufl.lock is
// packaged.
const DefaultPython = "/usr/bin/python3"

// Missing skips t, or fails it when CI=true, because the environment
// lacks what it needs. On Windows it always skips: .ci/setup prepares
// Linux runs only.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if runtime.GOOS == "windows" {
		// .ci/setup prepares mounts and Python for the Linux run only.
		t.Skip(msg + " (not on Windows: .ci/setup prepares this environment for Linux runs)")
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing test environment is a failure, not a skip)", msg)
	}
	t.Skip(msg)
}

// SSHFS returns a new empty directory seen through the two sshfs mounts
// named by NFSFLOCK_SSHFS_A and NFSFLOCK_SSHFS_B: a and b are one
// directory on the server, reached by two clients with separate caches. It
// checks that a file made through a is seen through b, and removes the
// directory when the test ends.
//
// Without the variables it skips t (fails it when CI=true), naming them
// and .ci/setup.
func SSHFS(t testing.TB) (a, b string) {
	t.Helper()
	rootA, rootB := os.Getenv(SSHFSAEnv), os.Getenv(SSHFSBEnv)
	if rootA == "" || rootB == "" {
		Missing(t, "%s and %s are not set: run `source .ci/setup` as root to mount two sshfs views of one directory", SSHFSAEnv, SSHFSBEnv)
	}
	name := dirName(t)
	a, b = filepath.Join(rootA, name), filepath.Join(rootB, name)
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatalf("%s=%s is set but unusable: %v", SSHFSAEnv, rootA, err)
	}
	t.Cleanup(func() { removeMountDir(t, a) })
	if fi, err := os.Stat(b); err != nil || !fi.IsDir() {
		t.Fatalf("directory %s made through %s is not seen through %s=%s (%v): are they mounts of one directory?", a, SSHFSAEnv, SSHFSBEnv, rootB, err)
	}
	if sameMount(t, rootA, rootB) {
		t.Fatalf("%s and %s are one mount; they must be two clients of one directory", rootA, rootB)
	}
	return a, b
}

// SSHFSServer returns the directory a, made by [SSHFS], as the server
// sees it on its own disk (NFSFLOCK_SSHFS_SERVER). It checks that a file
// made through a is seen there. Without the variable it skips t (fails
// it when CI=true).
func SSHFSServer(t testing.TB, a string) string {
	t.Helper()
	root := os.Getenv(SSHFSServerEnv)
	if root == "" {
		Missing(t, "%s is not set: run `source .ci/setup` as root to mount two sshfs views of one directory", SSHFSServerEnv)
	}
	dir := filepath.Join(root, filepath.Base(a))
	probe := "server-probe"
	if err := os.WriteFile(filepath.Join(a, probe), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := os.Stat(filepath.Join(dir, probe))
	os.Remove(filepath.Join(a, probe))
	if err != nil {
		t.Fatalf("a file made through %s is not seen in %s (%s=%s): is it the directory the mounts show? %v", a, dir, SSHFSServerEnv, root, err)
	}
	return dir
}

// SSHFSNoLink returns a new empty directory on the mount named by
// NFSFLOCK_SSHFS_NOLINK, a filesystem on which link(2) fails, and removes
// it when the test ends. It checks that link(2) does fail there.
//
// Without the variable it skips t (fails it when CI=true).
func SSHFSNoLink(t testing.TB) string {
	t.Helper()
	root := os.Getenv(SSHFSNoLinkEnv)
	if root == "" {
		Missing(t, "%s is not set: run `source .ci/setup` as root to mount sshfs with -o disable_hardlink", SSHFSNoLinkEnv)
	}
	dir := filepath.Join(root, dirName(t))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("%s=%s is set but unusable: %v", SSHFSNoLinkEnv, root, err)
	}
	t.Cleanup(func() { removeMountDir(t, dir) })
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := os.Link(probe, probe+".link")
	os.Remove(probe + ".link")
	os.Remove(probe)
	if err == nil {
		t.Fatalf("link(2) works on %s=%s; it must be mounted with -o disable_hardlink", SSHFSNoLinkEnv, root)
	}
	return dir
}

// Names lists dir, sorted. It leaves out the names a FUSE client (sshfs)
// gives a removed file that was still open for a moment (.fuse_hidden...:
// its close reaches the client asynchronously): they are the client's,
// and go with the close.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".fuse_hidden") {
			names = append(names, e.Name())
		}
	}
	return names
}

// removeMountDir removes dir, a test's directory on an sshfs mount, and
// fails t, naming what is left, if it cannot. It tries again for a while:
// a file removed there while open stays under a hidden name
// (.fuse_hidden...) until sshfs hears it was closed, which the kernel tells
// it after close returns, and a listing through one client may lag the
// files another client made (sshfs caches directories), so that a removal
// misses them. That cache keeps a listing for up to sshfs's default
// dcache_timeout, 20 s: a 10 s bound still failed TestClockSkew's cleanup
// once, with the files another client made listed only at its end.
func removeMountDir(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(25 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var left []string
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			t.Errorf("removing the test directory: %v (left: %q)", err, left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dirName is a name for a test's directory on a shared mount: readable,
// and unique across runs and processes.
func dirName(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	safe := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	return safe + "." + hex.EncodeToString(b[:])
}

func sameMount(t testing.TB, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb) // compares device and inode
}

var python struct {
	once sync.Once
	path string
	err  error
}

// FluflPython returns the path of a Python interpreter that imports
// flufl.lock: $NFSFLOCK_PYTHON, or /usr/bin/python3 (Debian's, for which
// python3-flufl.lock is packaged).
//
// If it cannot import flufl.lock, FluflPython skips t (fails it when
// CI=true), naming the package and .ci/setup.
func FluflPython(t testing.TB) string {
	t.Helper()
	python.once.Do(func() {
		python.path = os.Getenv(PythonEnv)
		if python.path == "" {
			python.path = DefaultPython
		}
		out, err := exec.Command(python.path, "-c", "import flufl.lock").CombinedOutput()
		if err != nil {
			python.err = fmt.Errorf("%s cannot import flufl.lock: %v: %s", python.path, err, strings.TrimSpace(string(out)))
			if errors.Is(err, fs.ErrNotExist) {
				python.err = fmt.Errorf("no %s: %v", python.path, err)
			}
		}
	})
	if python.err != nil {
		Missing(t, "%v; install python3-flufl.lock (`.ci/setup` does, as root) or set %s", python.err, PythonEnv)
	}
	return python.path
}
