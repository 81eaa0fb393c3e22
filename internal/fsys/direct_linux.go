package fsys

import "golang.org/x/sys/unix"

// Direct reports whether dir lies on one of the local filesystems known
// here, by statfs, that answer Lstat from the file itself and keep an
// open file's inode number from being reused. Network and FUSE
// filesystems (whose attributes are cached by the client, or numbered
// by path), overlayfs and anything unknown are not.
func (posixFS) Direct(dir string) bool {
	_, direct, _ := localKind(dir)
	return direct
}

// Swaps reports whether dir lies on a local filesystem known here whose
// renameat2(RENAME_EXCHANGE) swaps names in one step: those Direct
// allows, and overlayfs, which swaps in its upper layer.
func (posixFS) Swaps(dir string) bool {
	_, _, swaps := localKind(dir)
	return swaps
}

// Local reports whether dir lies on a local filesystem known here, by
// statfs: not a network, FUSE or cluster filesystem (GPFS, Lustre, GFS2,
// BeeGFS), nor anything unknown. Only there does inotify see every change
// to the directory.
func Local(dir string) bool {
	local, _, _ := localKind(dir)
	return local
}

// localKind tells, by statfs, whether dir lies on a local filesystem known
// here, whether it is also one that Direct allows, and whether Swaps does.
func localKind(dir string) (local, direct, swaps bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, false, false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.RAMFS_MAGIC, zfsMagic, bcachefsMagic:
		return true, true, true
	case unix.OVERLAYFS_SUPER_MAGIC:
		return true, false, true
	case unix.MSDOS_SUPER_MAGIC, unix.EXFAT_SUPER_MAGIC, unix.REISERFS_SUPER_MAGIC, unix.NILFS_SUPER_MAGIC:
		return true, false, false
	}
	return false, false, false
}

// Local filesystems whose magic numbers x/sys does not name.
const (
	zfsMagic      = 0x2fc12fc1
	bcachefsMagic = 0xca451a4e
)
