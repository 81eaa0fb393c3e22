// Package fsys is the seam between the lock protocol and the operating
// system: the few calls the protocol makes, behind an interface, so that
// tests can inject what cannot be provoked for real (a lost link reply, a
// filesystem that reports a link count of 1).
package fsys

import (
	"io/fs"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys/fileinfo"
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
	// Exchange swaps the files at two existing names in one step, so that
	// neither name is ever free. Where it cannot be done in one step the
	// error matches errors.ErrUnsupported.
	Exchange(a, b string) error
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

// Direct is implemented by an FS that can tell, for a directory, that
// Lstat there reads the file itself and never a cached copy, and that a
// file held open keeps its device and inode numbers to itself until it is
// closed (a local disk, not a network filesystem). There a file at a path
// is one held open exactly when Lstat reports that file's numbers: one
// call tells what an open, a stat and a read would.
type Direct interface {
	Direct(dir string) bool
}

// Swapper is implemented by an FS that can tell, for a directory, that
// Exchange there swaps two names in one step of the kernel's own, which
// no server or FUSE daemon carries out in several: a local disk's, and an
// overlay's, which swaps in its upper layer. A directory that Direct
// allows swaps too, whether or not the FS implements Swapper.
type Swapper interface {
	Swaps(dir string) bool
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

// Info is a file's identity and times: see [fileinfo.Info], its one
// definition, which the platform packages share.
type Info = fileinfo.Info

// NoUID is the Uid of a file on a system without user IDs.
const NoUID = fileinfo.NoUID

// ErrNotRegular is what a *NotRegularError matches with errors.Is.
var ErrNotRegular = fileinfo.ErrNotRegular

// NotRegularError says what was found where a regular file was expected.
type NotRegularError = fileinfo.NotRegularError

// Kind names the type of a file mode, as NotRegularError.Kind does.
func Kind(m fs.FileMode) string { return fileinfo.Kind(m) }
