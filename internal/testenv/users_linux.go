package testenv

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Environment variables that .ci/setup writes for tests that run
// processes as other users.
const (
	// UserAEnv and UserBEnv name two unprivileged users who share their
	// primary group: an attacker and a victim in a shared directory.
	UserAEnv = "NFSFLOCK_USER_A"
	UserBEnv = "NFSFLOCK_USER_B"
)

// A User is an account that [ChildAs] runs a child process as.
type User struct {
	Name string
	UID  uint32
	GID  uint32 // the primary group, which the test users share
}

// Users returns the two unprivileged users named by NFSFLOCK_USER_A and
// NFSFLOCK_USER_B, which share their primary group. Running processes as
// them needs root.
//
// Without the variables, without the users, or when not root, it skips t
// (fails it when CI=true), saying why.
func Users(t testing.TB) (a, b User) {
	t.Helper()
	nameA, nameB := os.Getenv(UserAEnv), os.Getenv(UserBEnv)
	if nameA == "" || nameB == "" {
		Missing(t, "%s and %s are not set: run `source .ci/setup` as root to create two unprivileged test users", UserAEnv, UserBEnv)
	}
	if os.Geteuid() != 0 {
		Missing(t, "running processes as the test users %s and %s needs root (euid is %d)", nameA, nameB, os.Geteuid())
	}
	a, b = lookupUser(t, UserAEnv, nameA), lookupUser(t, UserBEnv, nameB)
	if a.GID != b.GID {
		t.Fatalf("the test users %s (gid %d) and %s (gid %d) must share their primary group", a.Name, a.GID, b.Name, b.GID)
	}
	if a.UID == 0 || b.UID == 0 || a.UID == b.UID {
		t.Fatalf("the test users %s (uid %d) and %s (uid %d) must be two unprivileged users", a.Name, a.UID, b.Name, b.UID)
	}
	return a, b
}

func lookupUser(t testing.TB, env, name string) User {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		Missing(t, "%s=%s: %v: run `source .ci/setup` as root to create the test users", env, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return User{Name: name, UID: uint32(uid), GID: uint32(gid)}
}

// ReachableDir returns a new empty directory of mode 0755 that every user
// can reach, and removes it when the test ends. t.TempDir will not do:
// the directory it makes for each test is private (0700).
//
// If the system's temporary directory cannot be reached by every user, it
// skips t (fails it when CI=true).
func ReachableDir(t testing.TB) string {
	t.Helper()
	for d := os.TempDir(); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			Missing(t, "%s is not searchable by other users (mode %v): set TMPDIR to a directory that is", d, fi.Mode())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	safe := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	dir, err := os.MkdirTemp("", "nfsflock-"+safe+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the test directory: %v", err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ChildAs is [Child] run as user u, with no supplementary groups, in a
// directory that u can reach. The test binary usually lies in a private
// build directory, so it is linked (or copied) into a reachable one, once
// per test.
func ChildAs(t testing.TB, u User, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := Child(t, role, env...)
	exe := reachableBinary(t)
	cmd.Path, cmd.Args[0] = exe, exe
	cmd.Dir = filepath.Dir(exe)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
	}
	return cmd
}

// binaries holds, per test, the test binary where other users can run it.
var binaries sync.Map // testing.TB -> string

func reachableBinary(t testing.TB) string {
	t.Helper()
	if exe, ok := binaries.Load(t); ok {
		return exe.(string)
	}
	src, err := os.Executable()
	if err != nil {
		t.Fatalf("testenv.ChildAs: finding the test binary: %v", err)
	}
	exe := filepath.Join(ReachableDir(t), filepath.Base(src))
	if err := linkOrCopy(src, exe); err != nil {
		t.Fatalf("testenv.ChildAs: making the test binary reachable: %v", err)
	}
	binaries.Store(t, exe)
	t.Cleanup(func() { binaries.Delete(t) })
	return exe
}

// linkOrCopy makes dst the binary src, executable by every user: a hard
// link where src already is, a copy otherwise.
func linkOrCopy(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o005 == 0o005 && os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// The mode given to OpenFile is cut by the umask.
	return os.Chmod(dst, 0o755)
}
