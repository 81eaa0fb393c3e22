package posix

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// renameNoReplace is renameat2 with RENAME_NOREPLACE. Filesystems that do
// not support the flag (NFS, most FUSE filesystems) answer EINVAL. Linux's
// SMB client accepts the flag but checks it only against its own cache of
// the directory, and asks the server for a rename that replaces: there it
// is not exclusive between clients, and is reported as unsupported.
func renameNoReplace(oldname, newname string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(newname), &st); err == nil && smb(uint32(st.Type)) {
		return unix.EINVAL
	}
	return unix.Renameat2(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.RENAME_NOREPLACE)
}

// exchange is renameat2 with RENAME_EXCHANGE, refused where
// renameNoReplace is: Linux's SMB client does not swap names on the
// server in one step.
func exchange(a, b string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(b), &st); err == nil && smb(uint32(st.Type)) {
		return unix.EINVAL
	}
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// smb reports the filesystem types of Linux's SMB clients.
func smb(t uint32) bool {
	const (
		cifsMagic = 0xFF534D42
		smb2Magic = 0xFE534D42
		smbMagic  = 0x517B
	)
	return t == cifsMagic || t == smb2Magic || t == smbMagic
}
