//go:build unix && !aix && !linux && !darwin

package posix

import "errors"

// renameNoReplace has no atomic form on this system.
func renameNoReplace(oldname, newname string) error { return errors.ErrUnsupported }

// exchange is not used here: only Linux's local filesystems swap names
// where the lock relies on it.
func exchange(a, b string) error { return errors.ErrUnsupported }
