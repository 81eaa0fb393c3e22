// Package fileinfo defines what the platform packages (flock/posix,
// flock/windows) and the seam (internal/fsys) say of a file: its
// attributes and identity, and the error for a path that holds something
// other than a regular file. Each of them aliases these types rather than
// declaring its own. They cannot live in fsys, which imports the platform
// packages for its OS, nor in one platform package, which builds on its
// own systems only.
package fileinfo

import (
	"errors"
	"io/fs"
	"time"
)

// Info is a file's identity and times. Ino and Dev are 0 where the system
// has no stable file identity to report; Uid is the owner's user ID, or
// NoUID where the system has none. ChangeTime is the inode's change time,
// which the system stamps with its own clock (on a network filesystem, the
// server's): zero where none is reported, and on some filesystems (sshfs)
// a copy of ModTime rather than a stamp.
type Info struct {
	Mode       fs.FileMode
	Size       int64
	ModTime    time.Time
	ChangeTime time.Time
	Dev        uint64
	Ino        uint64
	Nlink      uint64
	Uid        uint32
}

// NoUID is the Uid of a file on a system without user IDs.
const NoUID = ^uint32(0)

// SameFile reports whether a and b are known to be the same file. Where no
// identity is reported it says false.
func (a Info) SameFile(b Info) bool {
	return a.Ino != 0 && a.Ino == b.Ino && a.Dev == b.Dev
}

// ErrNotRegular is what a *NotRegularError matches with errors.Is.
var ErrNotRegular = errors.New("flock: not a regular file")

// NotRegularError says what was found where a regular file was expected.
type NotRegularError struct {
	Kind string // "symlink", "directory", "FIFO", "socket", "device" or a mode
}

func (e *NotRegularError) Error() string { return "not a regular file (" + e.Kind + ")" }

// Is makes errors.Is(err, ErrNotRegular) true.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// NotRegular returns the error for a path where a file of mode m was found.
func NotRegular(m fs.FileMode) *NotRegularError { return &NotRegularError{Kind: Kind(m)} }

// Kind names the type of a file mode.
func Kind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeSymlink != 0:
		return "symlink"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	case t == 0:
		return "regular file"
	default:
		return "irregular file"
	}
}
