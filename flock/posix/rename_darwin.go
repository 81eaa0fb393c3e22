package posix

import "golang.org/x/sys/unix"

// renameNoReplace is renamex_np with RENAME_EXCL.
func renameNoReplace(oldname, newname string) error {
	return unix.RenamexNp(oldname, newname, unix.RENAME_EXCL)
}
