//go:build unix && !aix

package posix_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/flock/posix"
)

func TestReadAllSizes(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 1024, 5000, 9000} {
		p := filepath.Join(t.TempDir(), "f")
		want := strings.Repeat("x", n)
		os.WriteFile(p, []byte(want), 0o644)
		f, err := posix.Open(p)
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

func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	fifo := filepath.Join(dir, "fifo")
	unix.Mkfifo(fifo, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, p := range []string{dir, fifo, link, "/dev/null"} {
		f, err := posix.Open(p) // must not block on the FIFO
		if !errors.Is(err, posix.ErrNotRegular) {
			t.Errorf("Open(%s) = %v, %v; want ErrNotRegular", p, f, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != p {
			t.Errorf("Open(%s) error %v is not a *fs.PathError naming it", p, err)
		}
	}
	if _, err := posix.Open(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v; want ErrNotExist", err)
	}
}

func TestCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "claim")
	f, err := posix.CreateExclusive(p, []byte("hello"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Errorf("contents = %q", b)
	}
	if _, err := posix.CreateExclusive(p, nil, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateExclusive over a file = %v; want ErrExist", err)
	}
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if _, err := posix.CreateExclusive(link, []byte("x"), 0o644); err == nil {
		t.Errorf("CreateExclusive through a dangling symlink succeeded")
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CreateExclusive created the symlink's target")
	}
}

func TestSetTimes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, nil, 0o644)
	when := time.Unix(2000000000, 0)
	if err := posix.SetTimes(p, when); err != nil {
		t.Fatal(err)
	}
	f, err := posix.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info, _ := f.Stat(); !info.ModTime.Equal(when) || info.Nlink != 1 || info.Ino == 0 {
		t.Errorf("Stat() = %+v; want mtime %v", info, when)
	}
	later := when.Add(time.Hour)
	os.Rename(p, p+".moved")
	if err := f.SetTimes(later); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p + ".moved"); !fi.ModTime().Equal(later) {
		t.Errorf("File.SetTimes did not follow the open file: mtime %v", fi.ModTime())
	}
}

func TestProcessAlive(t *testing.T) {
	if !posix.ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(self) = false")
	}
	if posix.ProcessAlive(0) || posix.ProcessAlive(-1) {
		t.Error("ProcessAlive of a non-pid = true")
	}
}

// TestExchange: on Linux, on the test's local directory, two names swap
// their files; a missing name is ENOENT. Elsewhere the call reports
// errors.ErrUnsupported.
func TestExchange(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("a"), 0o644)
	os.WriteFile(b, []byte("b"), 0o644)
	err := posix.Exchange(a, b)
	if errors.Is(err, errors.ErrUnsupported) {
		if runtime.GOOS == "linux" {
			t.Skipf("this filesystem does not swap names: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Exchange = %v", err)
	}
	ga, _ := os.ReadFile(a)
	gb, _ := os.ReadFile(b)
	if string(ga) != "b" || string(gb) != "a" {
		t.Errorf("after Exchange a holds %q, b %q; want b, a", ga, gb)
	}
	if err := posix.Exchange(a, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Exchange with a missing name = %v; want ENOENT", err)
	}
}
