package fsys

import "golang.org/x/sys/unix"

// Direct reports whether dir lies on one of the local filesystems known
// here, by statfs, that answer Lstat from the file itself and keep an
// open file's inode number from being reused. Network and FUSE
// filesystems (whose attributes are cached by the client, or numbered
// by path), overlayfs and anything unknown are not.
func (posixFS) Direct(dir string) bool {
	_, direct := localKind(dir)
	return direct
}

// Local reports whether dir lies on a local filesystem known here, by
// statfs: not a network, FUSE or cluster filesystem (GPFS, Lustre, GFS2,
// BeeGFS), nor anything unknown. Only there does inotify see every change
// to the directory.
func Local(dir string) bool {
	local, _ := localKind(dir)
	return local
}

// localKind tells, by statfs, whether dir lies on a local filesystem known
// here, and whether it is also one that Direct allows.
func localKind(dir string) (local, direct bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC, unix.RAMFS_MAGIC, zfsMagic, bcachefsMagic:
		return true, true
	case unix.OVERLAYFS_SUPER_MAGIC, unix.MSDOS_SUPER_MAGIC, unix.EXFAT_SUPER_MAGIC,
		unix.REISERFS_SUPER_MAGIC, unix.NILFS_SUPER_MAGIC:
		return true, false
	}
	return false, false
}

// Local filesystems whose magic numbers x/sys does not name.
const (
	zfsMagic      = 0x2fc12fc1
	bcachefsMagic = 0xca451a4e
)
