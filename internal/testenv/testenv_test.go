package testenv_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

func TestRunPattern(t *testing.T) {
	tests := []struct {
		name  string
		match []string
		miss  []string
	}{
		{"TestA", []string{"TestA"}, []string{"TestAB", "XTestA"}},
		{"TestA/sub_1", []string{"TestA/sub_1"}, []string{"TestA/sub_10", "TestAB/sub_1"}},
		{"TestA/x.y+z", []string{"TestA/x.y+z"}, []string{"TestA/xxy+z"}},
	}
	for _, tt := range tests {
		p := testenv.RunPattern(tt.name)
		// go test matches each slash-separated element separately.
		elems := strings.Split(p, "/")
		matches := func(name string) bool {
			parts := strings.Split(name, "/")
			if len(parts) != len(elems) {
				return false
			}
			for i, e := range elems {
				if !regexp.MustCompile(e).MatchString(parts[i]) {
					return false
				}
			}
			return true
		}
		for _, m := range tt.match {
			if !matches(m) {
				t.Errorf("RunPattern(%q) = %q; does not match %q", tt.name, p, m)
			}
		}
		for _, m := range tt.miss {
			if matches(m) {
				t.Errorf("RunPattern(%q) = %q; matches %q", tt.name, p, m)
			}
		}
	}
}

// TestCommand runs itself as a child in two roles: one that passes and
// one that fails, which the parent must see as an exit status of 1.
func TestCommand(t *testing.T) {
	switch testenv.Role() {
	case "pass":
		if os.Getenv("TESTENV_EXTRA") != "x" {
			t.Fatal("extra environment not passed to the child")
		}
		return
	case "fail":
		t.Fatal("failing on purpose")
	case "":
	default:
		t.Fatalf("unknown role %q", testenv.Role())
	}
	if out, err := testenv.Command(t, "pass", "TESTENV_EXTRA=x").CombinedOutput(); err != nil {
		t.Errorf("child in role pass: %v\n%s", err, out)
	}
	out, err := testenv.Command(t, "fail").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "failing on purpose") {
		t.Errorf("child in role fail: err = %v; want exit status 1 with its message\n%s", err, out)
	}
}

// TestMissingFailsUnderCI checks, in a child with CI=true and no sshfs
// variables, that SSHFS fails rather than skips.
func TestMissingFailsUnderCI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Missing skips on Windows even under CI=true: .ci/setup prepares Linux runs only")
	}
	if testenv.Role() == "sshfs" {
		testenv.SSHFS(t)
		return
	}
	for _, ci := range []string{"true", ""} {
		cmd := testenv.Command(t, "sshfs", "CI="+ci, testenv.SSHFSAEnv+"=", testenv.SSHFSBEnv+"=")
		cmd.Args = append(cmd.Args, "-test.v")
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL")):
			t.Errorf("CI=true, no sshfs: err = %v; want a failure\n%s", err, out)
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("CI unset, no sshfs: err = %v; want a skip\n%s", err, out)
		}
		if !strings.Contains(string(out), ".ci/setup") {
			t.Errorf("CI=%q: the message does not name .ci/setup:\n%s", ci, out)
		}
	}
}

func TestSSHFS(t *testing.T) {
	a, b := testenv.SSHFS(t)
	if err := os.WriteFile(a+"/f", []byte("through a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(b + "/f"); err != nil || string(got) != "through a" {
		t.Errorf("ReadFile through b = %q, %v; want %q", got, err, "through a")
	}
}

func TestSSHFSNoLink(t *testing.T) {
	dir := testenv.SSHFSNoLink(t)
	if err := os.Link(dir+"/missing", dir+"/x"); err == nil {
		t.Errorf("link on %s succeeded", dir)
	}
}

func TestFluflPython(t *testing.T) {
	py := testenv.FluflPython(t)
	out, err := exec.Command(py, "-c", "import flufl.lock; print(flufl.lock.SEP)").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "|" {
		t.Errorf("%s: flufl.lock.SEP = %q, %v; want %q", py, out, err, "|")
	}
}

// TestTempDir: the directory is new and empty, and is gone, with what was
// put in it, once the test that asked for it has ended.
func TestTempDir(t *testing.T) {
	var dir string
	t.Run("user", func(t *testing.T) {
		dir = testenv.TempDir(t)
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 0 {
			t.Fatalf("TempDir holds %v, %v; want an empty directory", ents, err)
		}
		sub := filepath.Join(dir, "a", "b")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TempDir %s after its test ended: %v; want it gone", dir, err)
	}
}
