package fsys

import "golang.org/x/sys/unix"

// Direct reports whether dir lies on one of the local filesystems known
// here, by statfs: each answers Lstat from the file itself and keeps an
// open file's inode number from being reused. Network and FUSE
// filesystems (whose attributes are cached by the client, or numbered
// by path), overlayfs and anything unknown are not.
func (posixFS) Direct(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.RAMFS_MAGIC, zfsMagic, bcachefsMagic:
		return true
	}
	return false
}

// Local filesystems whose magic numbers x/sys does not name.
const (
	zfsMagic      = 0x2fc12fc1
	bcachefsMagic = 0xca451a4e
)
