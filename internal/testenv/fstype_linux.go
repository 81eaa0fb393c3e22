package testenv

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// FilesystemType returns the type of the filesystem that holds path, as
// statfs reports it: "ext4" (also for ext2 and ext3, which share its
// magic number), "xfs", "btrfs", "tmpfs", "overlay", "fuse" (sshfs among
// others) or "nfs"; for any other, its magic number in hex.
func FilesystemType(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", path, err)
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4", nil
	case unix.XFS_SUPER_MAGIC:
		return "xfs", nil
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", nil
	case unix.TMPFS_MAGIC:
		return "tmpfs", nil
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay", nil
	case unix.FUSE_SUPER_MAGIC:
		return "fuse", nil
	case unix.NFS_SUPER_MAGIC:
		return "nfs", nil
	}
	return fmt.Sprintf("%#x", uint32(st.Type)), nil
}
