package testenv_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

func TestFilesystemDir(t *testing.T) {
	for _, fs := range testenv.Filesystems() {
		t.Run(fs.Name, func(t *testing.T) {
			dir := fs.Dir(t)
			if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
				t.Fatalf("ReadDir(%s) = %v, %v; want an empty directory", dir, names, err)
			}
			if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
				t.Errorf("link(2) on %s: %v", fs.Name, err)
			}
		})
	}
}

// TestFilesystemMissing checks, in a child without the XFS variable, that
// Dir skips naming the variable, and fails under CI=true.
func TestFilesystemMissing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Missing skips on Windows even under CI=true: .ci/setup prepares Linux runs only")
	}
	if testenv.Role() == "xfs" {
		testenv.Filesystem{Name: "xfs", Env: testenv.XFSEnv}.Dir(t)
		return
	}
	for _, ci := range []string{"true", ""} {
		cmd := testenv.Command(t, "xfs", "CI="+ci, testenv.XFSEnv+"=")
		cmd.Args = append(cmd.Args, "-test.v")
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL")):
			t.Errorf("CI=true, no XFS: err = %v; want a failure\n%s", err, out)
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("CI unset, no XFS: err = %v; want a skip\n%s", err, out)
		}
		if !strings.Contains(string(out), testenv.XFSEnv) || !strings.Contains(string(out), ".ci/setup") {
			t.Errorf("CI=%q: the message does not name %s and .ci/setup:\n%s", ci, testenv.XFSEnv, out)
		}
	}
}
