//go:build unix && !aix && !linux && !darwin

package posix

import "errors"

// renameNoReplace has no atomic form on this system.
func renameNoReplace(oldname, newname string) error { return errors.ErrUnsupported }
