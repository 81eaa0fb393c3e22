//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The gate reads back exactly the command that nfsflock sends, empty
// strings and all, and refuses what a pipe cut short leaves.
func TestGateSpec(t *testing.T) {
	for _, c := range []struct {
		prog      string
		argv, env []string
	}{
		{"/bin/true", []string{"true"}, []string{"A=1", "B="}},
		{"prog", []string{"", "x y", "=", ""}, nil},
		{"p", nil, []string{""}},
	} {
		spec := gateSpec(c.prog, c.argv, c.env)
		prog, argv, env, ok := parseGateSpec(spec)
		if !ok || prog != c.prog || !slices.Equal(argv, c.argv) || !slices.Equal(env, c.env) {
			t.Errorf("parseGateSpec(gateSpec(%q, %q, %q)) = %q, %q, %q, %v", c.prog, c.argv, c.env, prog, argv, env, ok)
		}
		for n := range len(spec) {
			if prog, argv, env, ok := parseGateSpec(spec[:n]); ok {
				t.Errorf("parseGateSpec(first %d bytes of %q) = %q, %q, %q; want refused", n, spec, prog, argv, env)
			}
		}
	}
}

// Descriptors that nfsflock inherits reach the command at their numbers,
// as under flock(1): a jobserver's from make, systemd's sockets from 3 up,
// a shell's 3>>log. The gate's pipes once took 3 and 4, and the command
// got neither of the inherited ones (helper 77).
func TestInheritedFDsReachCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var files []*os.File
	for _, name := range []string{"fd3", "fd4", "fd5"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	cmd := exec.Command(binary, "L", "--", "sh", "-c", "echo three >&3; echo four >&4; echo five >&5")
	cmd.Dir = dir
	cmd.ExtraFiles = files
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("nfsflock: %v, output %q", err, out)
	}
	for name, want := range map[string]string{"fd3": "three\n", "fd4": "four\n", "fd5": "five\n"} {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		if string(got) != want {
			t.Errorf("%s holds %q; want %q (output %q)", name, got, want, strings.TrimSpace(string(out)))
		}
	}
}

// nfsflock's binary, replaced while it waits for the lock (a package
// upgrade renames a new file over it) by one that is no gate, still runs
// the command: on Linux the gate runs the binary nfsflock runs; elsewhere
// a gate that ends without a word is passed over. Once, the other binary
// ran in the gate's place, the command never ran, and nfsflock exited
// with the other's status as though the command had (helper 77).
func TestGateBinaryReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	self := filepath.Join(dir, "nfsflock")
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, b, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := start(t, dir, "L", "--", "sh", "-c", "touch held; while [ ! -e go ]; do sleep 0.05; done")
	waitFor(t, "the holder to run", func() bool { return exists(filepath.Join(dir, "held")) })
	waiter := exec.Command(self, "L", "--", "sh", "-c", "touch ran")
	waiter.Dir = dir
	var stderr strings.Builder
	waiter.Stderr = &stderr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "nfsflock.new")
	if err := os.WriteFile(other, []byte("#!/bin/sh\necho \"another nfsflock: $0 $*\" >&2\nexit 64\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, self); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	holder.wait()
	err = waiter.Wait()
	if err != nil || !exists(filepath.Join(dir, "ran")) {
		t.Errorf("nfsflock: %v, stderr %q; want the command run, and 0", err, stderr.String())
	}
}
