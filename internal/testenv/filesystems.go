package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Environment variables that .ci/setup writes for the local filesystems
// that the process suites run on beside the default temporary directory.
const (
	// XFSEnv names an XFS on a loop device: what most NFS servers export.
	XFSEnv = "NFSFLOCK_FS_XFS"
	// BtrfsEnv names a btrfs on a loop device.
	BtrfsEnv = "NFSFLOCK_FS_BTRFS"
	// TmpfsEnv names a tmpfs.
	TmpfsEnv = "NFSFLOCK_FS_TMPFS"
	// OverlayEnv names an overlayfs, as containers see their files.
	OverlayEnv = "NFSFLOCK_FS_OVERLAY"
)

// A Filesystem is one kind of filesystem that a test can run on: the
// default temporary directory, or a mount that .ci/setup makes.
type Filesystem struct {
	// Name names the filesystem in subtests: "tempdir" for the default
	// temporary directory, else the mount's type as [FilesystemType]
	// reports it.
	Name string
	// Env is the variable that names the mount, "" for the default.
	Env string
}

// Filesystems returns the filesystems that the process suites run on: the
// default temporary directory, then XFS, btrfs, tmpfs and overlayfs, each
// whether or not this run has it mounted ([Filesystem.Dir] says).
func Filesystems() []Filesystem {
	return []Filesystem{
		{Name: "tempdir"},
		{Name: "xfs", Env: XFSEnv},
		{Name: "btrfs", Env: BtrfsEnv},
		{Name: "tmpfs", Env: TmpfsEnv},
		{Name: "overlay", Env: OverlayEnv},
	}
}

// Dir returns a new empty directory on fs and removes it when the test
// ends; for the default temporary directory it is [TempDir].
//
// Without the mount's variable it skips t (fails it when CI=true), naming
// the variable and .ci/setup. A variable that names no usable directory,
// or one on a filesystem of another type, fails t.
func (fs Filesystem) Dir(t testing.TB) string {
	t.Helper()
	if fs.Env == "" {
		dir := TempDir(t)
		if typ, err := FilesystemType(dir); err == nil && typ != "" {
			t.Logf("the default temporary directory is on %s", typ)
		}
		return dir
	}
	root := os.Getenv(fs.Env)
	if root == "" {
		Missing(t, "%s is not set: run `source .ci/setup` as root to mount %s", fs.Env, fs.Name)
	}
	dir := filepath.Join(root, dirName(t))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("%s=%s is set but unusable: %v", fs.Env, root, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the test directory: %v", err)
		}
	})
	typ, err := FilesystemType(dir)
	if err != nil {
		t.Fatalf("%s=%s: %v", fs.Env, root, err)
	}
	if typ != "" && typ != fs.Name {
		t.Fatalf("%s=%s is on %s; want %s", fs.Env, root, typ, fs.Name)
	}
	return dir
}
