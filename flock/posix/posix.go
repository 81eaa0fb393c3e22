//go:build unix && !aix

package posix

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/fsys/fileinfo"
)

// ErrNotRegular is wrapped by errors about a path that exists but is not a
// regular file (a symlink, directory, FIFO, socket or device).
var ErrNotRegular = fileinfo.ErrNotRegular

// NotRegularError reports what was found at a path where a regular file
// was expected. It matches [ErrNotRegular].
type NotRegularError = fileinfo.NotRegularError

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// CreateExclusive creates path, which must not exist, with contents data and
// mode perm (less the umask), and returns it open for writing, so that its
// times can be set and its identity read without another lookup. It never
// follows a symlink at path. If writing fails, the file is removed again.
func CreateExclusive(path string, data []byte, perm fs.FileMode) (*File, error) {
	fd, err := open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, pathErr("create", path, err)
	}
	f := &File{fd: fd, path: path}
	if err := f.Write(data); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return nil, err
	}
	return f, nil
}

// Write writes data to the file at its current offset, all of it or
// failing.
func (f *File) Write(data []byte) error {
	var err error
	for len(data) > 0 && err == nil {
		var n int
		err = ignoringEINTR(func() error {
			var err error
			n, err = unix.Write(f.fd, data)
			return err
		})
		if n <= 0 && err == nil {
			err = io.ErrShortWrite
		}
		if err == nil {
			data = data[n:]
		}
	}
	return pathErr("write", f.path, err)
}

// Link makes newname a hard link to oldname.
func Link(oldname, newname string) error {
	err := ignoringEINTR(func() error { return unix.Link(oldname, newname) })
	if err != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Rename renames oldname to newname, replacing newname if it exists.
func Rename(oldname, newname string) error {
	err := ignoringEINTR(func() error { return unix.Rename(oldname, newname) })
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// RenameNoReplace renames oldname to newname, failing with EEXIST if
// newname exists; it never replaces a file. Where the system or the
// filesystem cannot do that in one step the error matches
// [errors.ErrUnsupported], and the caller must fall back to [Link] and
// [Remove].
func RenameNoReplace(oldname, newname string) error {
	return renameErr("rename", oldname, newname, ignoringEINTR(func() error { return renameNoReplace(oldname, newname) }))
}

// renameErr is the error of a rename with flags: nil, or one that names
// both files and matches errors.ErrUnsupported where the system or the
// filesystem refused the flags.
func renameErr(op, oldname, newname string, err error) error {
	if err == nil {
		return nil
	}
	// ENOTSUP and EOPNOTSUPP are one number on Linux, two on the BSDs.
	if err == unix.EINVAL || err == unix.ENOSYS || err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		err = errors.ErrUnsupported
	}
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
}

// Exchange swaps the files at two names in one step: each name then
// names what the other named, and neither is ever without a file. Both
// must exist. Where the system or the filesystem cannot swap names (NFS,
// most FUSE filesystems, systems other than Linux) the error matches
// [errors.ErrUnsupported].
func Exchange(a, b string) error {
	return renameErr("exchange", a, b, ignoringEINTR(func() error { return exchange(a, b) }))
}

// Remove unlinks path, which must not be a directory.
func Remove(path string) error {
	return pathErr("remove", path, ignoringEINTR(func() error { return unix.Unlink(path) }))
}

// SetTimes sets the access and modification times of path to t, without
// following a symlink at path.
func SetTimes(path string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	err := ignoringEINTR(func() error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
	return pathErr("chtimes", path, err)
}

// Info is what a File's descriptor says of it. Uid is the owner's.
type Info = fileinfo.Info

// File is a regular file opened for inspection, or created by
// [CreateExclusive].
type File struct {
	fd   int
	path string
	info Info // as read by Open
}

// Lstat returns the attributes of path itself, not following a symlink.
func Lstat(path string) (Info, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return Info{}, pathErr("lstat", path, err)
	}
	return infoOf(&st), nil
}

// Open opens path for reading if it is a regular file. It does not follow a
// symlink at path, does not block on a FIFO and does not open a device:
// what is not a regular file gives a [*NotRegularError]. On network
// filesystems, opening revalidates the attributes that Stat then reports.
func Open(path string) (*File, error) {
	li, err := Lstat(path)
	if err != nil {
		return nil, pathErr("open", path, errors.Unwrap(err))
	}
	if !li.Mode.IsRegular() {
		return nil, pathErr("open", path, fileinfo.NotRegular(li.Mode))
	}
	fd, err := open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.EMLINK {
			// Swapped for a symlink since the Lstat.
			err = fileinfo.NotRegular(fs.ModeSymlink)
		}
		return nil, pathErr("open", path, err)
	}
	f := &File{fd: fd, path: path}
	if f.info, err = f.Stat(); err != nil {
		f.Close()
		return nil, err
	}
	if !f.info.Mode.IsRegular() {
		f.Close()
		return nil, pathErr("open", path, fileinfo.NotRegular(f.info.Mode))
	}
	return f, nil
}

// Info returns the attributes that Open read through the new descriptor.
func (f *File) Info() Info { return f.info }

// Stat reads the file's attributes through its descriptor.
func (f *File) Stat() (Info, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(f.fd, &st) }); err != nil {
		return Info{}, pathErr("stat", f.path, err)
	}
	return infoOf(&st), nil
}

func infoOf(st *unix.Stat_t) Info {
	return Info{
		Mode:       fileMode(uint32(st.Mode)),
		Size:       st.Size,
		ModTime:    time.Unix(st.Mtim.Unix()),
		ChangeTime: time.Unix(st.Ctim.Unix()),
		Dev:        uint64(st.Dev),
		Ino:        uint64(st.Ino),
		Nlink:      uint64(st.Nlink),
		Uid:        st.Uid,
	}
}

// ReadAll reads the file from its start, at most max bytes. A short read
// is taken as the end of the file, which saves a system call on the small
// files a lock deals in.
func (f *File) ReadAll(max int) ([]byte, error) {
	buf := make([]byte, min(512, max))
	n := 0
	for n < max {
		if n == len(buf) {
			buf = append(buf, make([]byte, min(len(buf), max-n))...)
		}
		var m int
		err := ignoringEINTR(func() error {
			var err error
			m, err = unix.Pread(f.fd, buf[n:], int64(n))
			return err
		})
		if err != nil {
			return nil, pathErr("read", f.path, err)
		}
		n += m
		if m == 0 || n < len(buf) {
			break
		}
	}
	return buf[:n], nil
}

// SetTimes sets the access and modification times of the open file to t.
// It acts on the file that was opened even if its path has since been
// renamed or removed, except where the filesystem's client sets times by
// path: sshfs does, and there it changes whatever file has that path now.
func (f *File) SetTimes(t time.Time) error {
	return pathErr("chtimes", f.path, ignoringEINTR(func() error { return futimens(f.fd, t) }))
}

// Close closes the descriptor.
func (f *File) Close() error {
	return pathErr("close", f.path, unix.Close(f.fd))
}

// ReadDir lists the names in dir.
func ReadDir(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var names []string
	for {
		batch, err := d.Readdirnames(1024)
		names = append(names, batch...)
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
	}
}

// ProcessAlive reports whether a process with this pid exists on this
// host. A process that exists but belongs to another user counts as alive.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

func open(path string, flags int, perm uint32) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Open(path, flags, perm)
		return err
	})
	return fd, err
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}
