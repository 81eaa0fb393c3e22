package testenv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestUsersMissingFailsUnderCI checks, in a child with no user variables,
// that Users fails under CI=true and skips otherwise, naming .ci/setup.
func TestUsersMissingFailsUnderCI(t *testing.T) {
	if testenv.Role() == "users" {
		testenv.Users(t)
		return
	}
	for _, ci := range []string{"true", ""} {
		cmd := testenv.Command(t, "users", "CI="+ci, testenv.UserAEnv+"=", testenv.UserBEnv+"=")
		cmd.Args = append(cmd.Args, "-test.v")
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL")):
			t.Errorf("CI=true, no users: err = %v; want a failure\n%s", err, out)
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("CI unset, no users: err = %v; want a skip\n%s", err, out)
		}
		if !strings.Contains(string(out), ".ci/setup") {
			t.Errorf("CI=%q: the message does not name .ci/setup:\n%s", ci, out)
		}
	}
}

// TestChildAs runs the test binary as each test user, from the private
// directory it was built in.
func TestChildAs(t *testing.T) {
	a, b := testenv.Users(t)
	if a.GID != b.GID {
		t.Errorf("Users() = %+v, %+v; want one primary group", a, b)
	}
	for _, u := range []testenv.User{a, b} {
		// No role: the child runs no test and exits 0.
		cmd := testenv.ChildAs(t, u, "none")
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("the test binary run as %s: %v\n%s", u.Name, err, out)
		}
	}
}

func TestReachableDir(t *testing.T) {
	dir := testenv.ReachableDir(t)
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Errorf("%s (mode %v) on the way to ReachableDir() = %s is not searchable by other users", d, fi.Mode(), dir)
		}
	}
}
