// Package fsys is the seam between the lock protocol and the operating
// system: the few calls the protocol makes, behind an interface, so that
// tests can inject what cannot be provoked for real (a lost link reply, a
// filesystem that reports a link count of 1).
package fsys

import (
	"errors"
	"io/fs"
	"time"
)

// FS is what the lock protocol needs from the system. Nothing in it sets
// a file's times or writes to it by path: the protocol does that only
// through descriptors whose file it has checked (or created).
type FS interface {
	// Create creates path, which must not exist, with contents data and
	// both times t, never following a symlink, and returns it open. On
	// failure nothing is left at path. A zero t leaves the times as the
	// write of data stamped them, by the filesystem's clock; then a
	// failure after the file was created leaves it in place, for the
	// caller to judge: removing it by name could remove a file that
	// replaced it meanwhile.
	Create(path string, data []byte, t time.Time) (File, error)
	// Lstat returns the attributes of path itself, not following a symlink.
	Lstat(path string) (Info, error)
	// Link publishes oldname under newname as a hard link.
	Link(oldname, newname string) error
	// Rename moves oldname to newname, replacing what is there.
	Rename(oldname, newname string) error
	// RenameNoReplace moves oldname to newname, failing with an error that
	// matches fs.ErrExist if newname exists. Where it cannot be done in one
	// step the error matches errors.ErrUnsupported.
	RenameNoReplace(oldname, newname string) error
	// Remove unlinks a file.
	Remove(path string) error
	// Open opens a regular file for inspection; anything else gives an
	// error that wraps a *NotRegularError.
	Open(path string) (File, error)
	// ReadDir lists the names in a directory.
	ReadDir(dir string) ([]string, error)
	// ProcessAlive reports whether pid runs on this host.
	ProcessAlive(pid int) bool
	// Namespace identifies where ProcessAlive looks: this boot of this host
	// and, on Linux, this pid namespace. Two processes with the same
	// Namespace see the same pids. It is 0 where that cannot be told, and
	// at most claim.MaxTag.
	Namespace() uint64
}

// File is an open regular file. Its attributes come from the descriptor,
// which network filesystems revalidate on open.
type File interface {
	// Stat returns the file's attributes: the first call after Open or
	// Create returns what they read, later calls read them again.
	Stat() (Info, error)
	ReadAll(max int) ([]byte, error)
	// SetTimes sets both times of the open file, whatever its path now is.
	SetTimes(t time.Time) error
	Close() error
}

// Info is a file's identity and times. Ino and Dev are 0 where the system
// has no stable file identity to report; Uid is the owner's user ID, or
// NoUID where the system has none. ChangeTime is the inode's change time
// as the filesystem reports it: zero where it reports none, and on some
// (sshfs) a copy of ModTime rather than a stamp of its clock.
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
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError says what was found where a regular file was expected.
type NotRegularError struct {
	Kind string // "symlink", "directory", "FIFO", "socket", "device" or a mode
}

func (e *NotRegularError) Error() string { return "not a regular file (" + e.Kind + ")" }

// Is makes errors.Is(err, ErrNotRegular) true.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

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
