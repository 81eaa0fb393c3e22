package windows_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sys "golang.org/x/sys/windows"

	"github.com/nfsflock/nfsflock/flock/windows"
	"github.com/nfsflock/nfsflock/internal/fsys/fileinfo"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("NFSFLOCK_WINDOWS_TEST_EXIT") != "" {
		os.Exit(3) // a child for TestProcessAlive, ended at once
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateExclusive(t *testing.T) {
	p := filepath.Join(testenv.TempDir(t), "claim")
	f, err := windows.CreateExclusive(p, []byte("hello"), 0o644)
	if err != nil {
		t.Fatalf("CreateExclusive = %v", err)
	}
	info, err := f.Stat()
	if err != nil || info.Size != 5 || !info.Mode.IsRegular() || info.Ino == 0 || info.Uid != fileinfo.NoUID {
		t.Errorf("Stat() = %+v, %v; want a regular file of 5 bytes with an identity and NoUID", info, err)
	}
	// The claim's handle shares delete access: the file can be moved
	// while it is open, as the protocol does to publish it.
	moved := p + ".moved"
	if err := windows.RenameNoReplace(p, moved); err != nil {
		t.Errorf("RenameNoReplace of an open claim = %v", err)
	}
	when := time.Unix(2000000000, 0)
	if err := f.SetTimes(when); err != nil {
		t.Errorf("File.SetTimes after the move = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, moved); got != "hello" {
		t.Errorf("contents = %q; want hello", got)
	}
	if fi, err := os.Stat(moved); err != nil || !fi.ModTime().Equal(when) {
		t.Errorf("mtime after File.SetTimes = %v, %v; want %v (the open file, whatever its path)", fi.ModTime(), err, when)
	}
	if _, err := windows.CreateExclusive(moved, []byte("x"), 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateExclusive over a file = %v; want ErrExist", err)
	}
	if got := readFile(t, moved); got != "hello" {
		t.Errorf("contents after a refused CreateExclusive = %q; want hello", got)
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := testenv.TempDir(t)
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	writeFile(t, a, "A")
	writeFile(t, b, "B")
	err := windows.RenameNoReplace(a, b)
	var le *os.LinkError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &le) || le.Old != a || le.New != b {
		t.Fatalf("RenameNoReplace onto a file = %v; want an *os.LinkError matching ErrExist", err)
	}
	if readFile(t, a) != "A" || readFile(t, b) != "B" {
		t.Errorf("a refused RenameNoReplace changed a file")
	}
	if err := windows.RenameNoReplace(a, c); err != nil {
		t.Fatalf("RenameNoReplace to a free name = %v", err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) || readFile(t, c) != "A" {
		t.Errorf("after RenameNoReplace(a, c): a is %v, c holds %q", err, readFile(t, c))
	}
	if err := windows.Rename(c, b); err != nil || readFile(t, b) != "A" {
		t.Errorf("Rename onto a file = %v, contents %q; want it replaced by A", err, readFile(t, b))
	}
}

func TestOpenRefusesNonRegular(t *testing.T) {
	dir := testenv.TempDir(t)
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	cases := map[string]string{dir: "directory", "NUL": "device"}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err == nil {
		f, err := windows.Open(link)
		switch {
		case errors.Is(err, fs.ErrNotExist) && testenv.Wine():
			// Wine keeps a symlink as a host symlink and cannot open it
			// as a reparse point: what matters here, that the target is
			// not opened, holds.
			t.Logf("Open(symlink) = %v under Wine", err)
		case err == nil:
			f.Close()
			t.Errorf("Open(symlink) succeeded; want it refused")
		default:
			cases[link] = "symlink"
		}
	} else {
		t.Logf("no symlink case: os.Symlink = %v (creating symlinks needs a privilege on Windows)", err)
	}
	for p, kind := range cases {
		f, err := windows.Open(p)
		var nr *windows.NotRegularError
		if !errors.Is(err, windows.ErrNotRegular) || !errors.As(err, &nr) || nr.Kind != kind {
			t.Errorf("Open(%s) = %v, %v; want a NotRegularError of kind %s", p, f, err, kind)
			if f != nil {
				f.Close()
			}
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != p {
			t.Errorf("Open(%s) error %v is not a *fs.PathError naming it", p, err)
		}
	}
	if _, err := windows.Open(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v; want ErrNotExist", err)
	}
	if info, err := windows.Lstat(dir); err != nil || !info.Mode.IsDir() {
		t.Errorf("Lstat(dir) = %+v, %v; want a directory", info, err)
	}
}

func TestIdentity(t *testing.T) {
	dir := testenv.TempDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, "A")
	writeFile(t, b, "B")
	la, err := windows.Lstat(a)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := windows.Lstat(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := windows.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if oa := f.Info(); !oa.SameFile(la) || la.SameFile(lb) || la.Uid != fileinfo.NoUID {
		t.Errorf("Lstat(a) = %+v, Open(a).Info() = %+v, Lstat(b) = %+v; want a the same file twice, b another", la, oa, lb)
	}
	// A move keeps the identity: the protocol's checks rely on it.
	if err := windows.Rename(a, a+".aside"); err != nil {
		t.Fatal(err)
	}
	if moved, err := windows.Lstat(a + ".aside"); err != nil || !moved.SameFile(la) {
		t.Errorf("Lstat after a move = %+v, %v; want the same file as %+v", moved, err, la)
	}
}

func TestReadAllSizes(t *testing.T) {
	dir := testenv.TempDir(t)
	for _, n := range []int{0, 1, 511, 512, 513, 1024, 5000, 9000} {
		p := filepath.Join(dir, "f")
		want := strings.Repeat("x", n)
		writeFile(t, p, want)
		f, err := windows.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.ReadAll(8192)
		f.Close()
		if err != nil || string(got) != want[:min(n, 8192)] {
			t.Errorf("ReadAll of %d bytes = %d bytes, %v", n, len(got), err)
		}
	}
}

func TestSetTimes(t *testing.T) {
	p := filepath.Join(testenv.TempDir(t), "f")
	writeFile(t, p, "")
	when := time.Unix(2000000000, 0)
	if err := windows.SetTimes(p, when); err != nil {
		t.Fatal(err)
	}
	if info, err := windows.Lstat(p); err != nil || !info.ModTime.Equal(when) {
		t.Errorf("Lstat after SetTimes = %+v, %v; want mtime %v", info, err, when)
	}
}

func TestRemoveWhileOpen(t *testing.T) {
	p := filepath.Join(testenv.TempDir(t), "f")
	writeFile(t, p, "x")
	f, err := windows.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := windows.Remove(p); err != nil {
		t.Errorf("Remove of a file open for inspection = %v; want nil (the handle shares delete access)", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := windows.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat after Remove and Close = %v; want ErrNotExist", err)
	}
}

// holdExclusive opens p without sharing delete access, as a scanner or
// another program might, and returns a function that closes it.
func holdExclusive(t *testing.T, p string) (release func()) {
	t.Helper()
	name, err := sys.UTF16PtrFromString(p)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sys.CreateFile(name, sys.GENERIC_READ, sys.FILE_SHARE_READ, nil, sys.OPEN_EXISTING, sys.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		t.Fatalf("CreateFile(%s) = %v", p, err)
	}
	return func() { sys.CloseHandle(h) }
}

// TestContentionRetried: a sharing violation that clears is retried, not
// returned.
func TestContentionRetried(t *testing.T) {
	p := filepath.Join(testenv.TempDir(t), "f")
	writeFile(t, p, "x")
	release := holdExclusive(t, p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(100 * time.Millisecond)
		release()
	}()
	err := windows.Remove(p)
	<-done
	if err != nil {
		t.Errorf("Remove while another handle held the file for a moment = %v; want nil", err)
	}
}

// TestContentionBounded: contention that does not clear is returned as
// the real error once the retries are spent.
func TestContentionBounded(t *testing.T) {
	p := filepath.Join(testenv.TempDir(t), "f")
	writeFile(t, p, "x")
	release := holdExclusive(t, p)
	defer release()
	if err := windows.Remove(p); !errors.Is(err, sys.ERROR_SHARING_VIOLATION) {
		t.Errorf("Remove of a file held without delete sharing = %v; want ERROR_SHARING_VIOLATION", err)
	}
}

func TestLink(t *testing.T) {
	dir := testenv.TempDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, "A")
	if err := windows.Link(a, b); err != nil {
		t.Skipf("Link = %v: no hard links on this filesystem (the protocol does not use them on Windows)", err)
	}
	la, _ := windows.Lstat(a)
	lb, err := windows.Lstat(b)
	if err != nil || !la.SameFile(lb) || lb.Nlink != 2 {
		t.Errorf("after Link, Lstat = %+v, %+v (%v); want one file with 2 links", la, lb, err)
	}
	if err := windows.Link(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Link onto a file = %v; want ErrExist", err)
	}
}

func TestReadDir(t *testing.T) {
	dir := testenv.TempDir(t)
	writeFile(t, filepath.Join(dir, "a"), "")
	writeFile(t, filepath.Join(dir, "b^host^1^2"), "")
	names, err := windows.ReadDir(dir)
	if err != nil || len(names) != 2 {
		t.Errorf("ReadDir = %q, %v; want a and b^host^1^2", names, err)
	}
}

func TestProcessAlive(t *testing.T) {
	if !windows.ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(self) = false")
	}
	if windows.ProcessAlive(0) || windows.ProcessAlive(-1) {
		t.Error("ProcessAlive of a non-pid = true")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "NFSFLOCK_WINDOWS_TEST_EXIT=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited 0; want 3")
	}
	if windows.ProcessAlive(pid) {
		t.Errorf("ProcessAlive(%d) = true after the process ended", pid)
	}
}
