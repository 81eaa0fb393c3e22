package posix

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameNoReplace is renamex_np with RENAME_EXCL.
func renameNoReplace(oldname, newname string) error {
	return unix.RenamexNp(oldname, newname, unix.RENAME_EXCL)
}

// exchange is not used here: only Linux's local filesystems swap names
// where the lock relies on it.
func exchange(a, b string) error { return errors.ErrUnsupported }
