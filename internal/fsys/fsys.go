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

// FS is what the lock protocol needs from the system.
type FS interface {
	// CreateExclusive creates path with contents data and both times t,
	// and returns its attributes; it fails if path exists, and never
	// follows a symlink. On failure nothing is left at path.
	CreateExclusive(path string, data []byte, t time.Time) (Info, error)
	// Lstat returns the attributes of path itself, not following a symlink.
	Lstat(path string) (Info, error)
	// Link publishes oldname under newname as a hard link.
	Link(oldname, newname string) error
	// Rename moves oldname to newname.
	Rename(oldname, newname string) error
	// Remove unlinks a file.
	Remove(path string) error
	// SetTimes sets access and modification times, not following symlinks.
	SetTimes(path string, t time.Time) error
	// Open opens a regular file for inspection; anything else gives an
	// error that wraps a *NotRegularError.
	Open(path string) (File, error)
	// ReadDir lists the names in a directory.
	ReadDir(dir string) ([]string, error)
	// ProcessAlive reports whether pid runs on this host.
	ProcessAlive(pid int) bool
}

// File is an open regular file. Its attributes come from the descriptor,
// which network filesystems revalidate on open.
type File interface {
	Stat() (Info, error)
	ReadAll(max int) ([]byte, error)
	SetTimes(t time.Time) error
	Close() error
}

// Info is a file's identity and times. Ino and Dev are 0 where the system
// has no stable file identity to report.
type Info struct {
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	Dev     uint64
	Ino     uint64
	Nlink   uint64
}

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
