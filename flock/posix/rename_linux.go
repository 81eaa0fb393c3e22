package posix

import "golang.org/x/sys/unix"

// renameNoReplace is renameat2 with RENAME_NOREPLACE. Filesystems that do
// not support the flag (NFS, most FUSE filesystems) answer EINVAL.
func renameNoReplace(oldname, newname string) error {
	return unix.Renameat2(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.RENAME_NOREPLACE)
}
