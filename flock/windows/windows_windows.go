package windows

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/nfsflock/nfsflock/internal/fsys/fileinfo"
)

// ErrNotRegular is wrapped by errors about a path that exists but is not a
// regular file (a directory, a symlink or junction, or a device).
var ErrNotRegular = fileinfo.ErrNotRegular

// NotRegularError reports what was found at a path where a regular file
// was expected. It matches [ErrNotRegular].
type NotRegularError = fileinfo.NotRegularError

// Info is what a File's handle says of it: Dev is the volume serial
// number, Ino the 64-bit file index, and Uid is [fileinfo.NoUID].
type Info = fileinfo.Info

// shareAll lets other processes read, write, move and delete a file this
// package holds open: a handle without FILE_SHARE_DELETE would make the
// protocol's moves and removals fail for as long as it is open.
const shareAll = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func linkErr(op, oldname, newname string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
}

// utf16 converts path for the system, with the \\?\ prefix that lifts
// MAX_PATH for long absolute paths, as package os does.
func utf16(path string) (*uint16, error) {
	if len(path) >= 248 && filepath.IsAbs(path) && !strings.HasPrefix(path, `\\?\`) {
		p := filepath.Clean(path)
		if strings.HasPrefix(p, `\\`) {
			path = `\\?\UNC\` + p[2:]
		} else {
			path = `\\?\` + p
		}
	}
	return windows.UTF16PtrFromString(path)
}

// createFile opens path with CreateFile, retrying contention. It never
// follows a reparse point and can open a directory, so that callers can
// refuse it by its attributes.
func createFile(path string, access, disposition, attrs uint32) (windows.Handle, error) {
	p, err := utf16(path)
	if err != nil {
		return windows.InvalidHandle, err
	}
	var h windows.Handle
	err = retrying(func() error {
		var err error
		h, err = windows.CreateFile(p, access, shareAll, nil, disposition,
			attrs|windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
		return err
	})
	return h, err
}

// CreateExclusive creates path, which must not exist, with contents data,
// and returns it open for reading, writing and setting times. A perm
// without owner write makes the file read-only. It never follows a
// reparse point at path. If writing fails, the file is removed again.
func CreateExclusive(path string, data []byte, perm fs.FileMode) (*File, error) {
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 {
		// As package os does; the new handle may write all the same.
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	h, err := createFile(path, windows.GENERIC_READ|windows.GENERIC_WRITE, windows.CREATE_NEW, attrs)
	if err != nil {
		return nil, pathErr("create", path, err)
	}
	for len(data) > 0 && err == nil {
		var n uint32
		err = windows.WriteFile(h, data, &n, nil)
		if n == 0 && err == nil {
			err = io.ErrShortWrite
		}
		data = data[n:]
	}
	if err != nil {
		windows.CloseHandle(h)
		Remove(path)
		return nil, pathErr("write", path, err)
	}
	return &File{h: h, path: path}, nil
}

// Link makes newname a hard link to oldname (CreateHardLink). The lock
// protocol does not use it on Windows: see the package doc.
func Link(oldname, newname string) error {
	o, err := utf16(oldname)
	if err != nil {
		return linkErr("link", oldname, newname, err)
	}
	n, err := utf16(newname)
	if err != nil {
		return linkErr("link", oldname, newname, err)
	}
	return linkErr("link", oldname, newname, retrying(func() error { return windows.CreateHardLink(n, o, 0) }))
}

// Rename moves oldname to newname, replacing newname if it exists.
func Rename(oldname, newname string) error {
	return move(oldname, newname, windows.MOVEFILE_REPLACE_EXISTING)
}

// RenameNoReplace moves oldname to newname, failing with an error that
// matches [fs.ErrExist] if newname exists; it never replaces a file. The
// file appears at newname with all its contents at once.
func RenameNoReplace(oldname, newname string) error {
	return move(oldname, newname, 0)
}

func move(oldname, newname string, flags uint32) error {
	o, err := utf16(oldname)
	if err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	n, err := utf16(newname)
	if err != nil {
		return linkErr("rename", oldname, newname, err)
	}
	return linkErr("rename", oldname, newname, retrying(func() error { return windows.MoveFileEx(o, n, flags) }))
}

// Remove deletes the file path, which must not be a directory. A file
// that others hold open (sharing delete access) disappears from its
// directory once the last handle is closed. A read-only file is made
// writable first, as package os does, and read-only again if it still
// cannot be deleted.
func Remove(path string) error {
	p, err := utf16(path)
	if err != nil {
		return pathErr("remove", path, err)
	}
	return pathErr("remove", path, retrying(func() error {
		err := windows.DeleteFile(p)
		if !errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return err
		}
		a, aerr := windows.GetFileAttributes(p)
		if aerr != nil || a&windows.FILE_ATTRIBUTE_READONLY == 0 || a&windows.FILE_ATTRIBUTE_DIRECTORY != 0 ||
			windows.SetFileAttributes(p, a&^windows.FILE_ATTRIBUTE_READONLY) != nil {
			return err
		}
		if err := windows.DeleteFile(p); err != nil {
			windows.SetFileAttributes(p, a)
			return err
		}
		return nil
	}))
}

// SetTimes sets the access and modification times of path to t, without
// following a reparse point at path.
func SetTimes(path string, t time.Time) error {
	h, err := createFile(path, windows.FILE_WRITE_ATTRIBUTES, windows.OPEN_EXISTING, 0)
	if err != nil {
		return pathErr("chtimes", path, err)
	}
	defer windows.CloseHandle(h)
	return pathErr("chtimes", path, setTimes(h, t))
}

func setTimes(h windows.Handle, t time.Time) error {
	ft := windows.NsecToFiletime(t.UnixNano())
	return windows.SetFileTime(h, nil, &ft, &ft)
}

// File is a regular file opened for inspection, or created by
// [CreateExclusive].
type File struct {
	h    windows.Handle
	path string
	info Info // as read by Open
}

// Lstat returns the attributes of path itself, not following a reparse
// point.
func Lstat(path string) (Info, error) {
	h, err := createFile(path, windows.FILE_READ_ATTRIBUTES, windows.OPEN_EXISTING, 0)
	if err != nil {
		return Info{}, pathErr("lstat", path, err)
	}
	defer windows.CloseHandle(h)
	info, err := infoOf(h)
	return info, pathErr("lstat", path, err)
}

// Open opens path for reading and setting times if it is a regular file.
// It does not follow a reparse point (a symlink or junction) and does not
// open a directory or device: what is not a regular file gives a
// [*NotRegularError]. A file whose attributes cannot be written (read-only
// by its attribute or its ACL) is opened for reading alone, and
// [File.SetTimes] then fails.
func Open(path string) (*File, error) {
	h, err := createFile(path, windows.GENERIC_READ|windows.FILE_WRITE_ATTRIBUTES, windows.OPEN_EXISTING, 0)
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		h, err = createFile(path, windows.GENERIC_READ, windows.OPEN_EXISTING, 0)
	}
	if err != nil {
		return nil, pathErr("open", path, err)
	}
	f := &File{h: h, path: path}
	if f.info, err = infoOf(h); err != nil {
		windows.CloseHandle(h)
		return nil, pathErr("open", path, err)
	}
	if !f.info.Mode.IsRegular() {
		windows.CloseHandle(h)
		return nil, pathErr("open", path, fileinfo.NotRegular(f.info.Mode))
	}
	return f, nil
}

// Info returns the attributes that Open read through the new handle.
func (f *File) Info() Info { return f.info }

// Stat reads the file's attributes through its handle.
func (f *File) Stat() (Info, error) {
	info, err := infoOf(f.h)
	return info, pathErr("stat", f.path, err)
}

// infoOf reads what a handle says of its file.
func infoOf(h windows.Handle) (Info, error) {
	t, err := windows.GetFileType(h)
	if err != nil {
		return Info{}, err
	}
	if t != windows.FILE_TYPE_DISK {
		mode := fs.ModeDevice | fs.ModeCharDevice
		if t == windows.FILE_TYPE_PIPE {
			mode = fs.ModeNamedPipe
		}
		return Info{Mode: mode, Uid: fileinfo.NoUID}, nil
	}
	var d windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &d); err != nil {
		return Info{}, err
	}
	mode := fs.FileMode(0o666)
	if d.FileAttributes&windows.FILE_ATTRIBUTE_READONLY != 0 {
		mode = 0o444
	}
	switch {
	case d.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 && nameSurrogate(h):
		mode |= fs.ModeSymlink
	case d.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		mode |= fs.ModeDir | 0o111
	}
	return Info{
		Mode:    mode,
		Size:    int64(d.FileSizeHigh)<<32 | int64(d.FileSizeLow),
		ModTime: time.Unix(0, d.LastWriteTime.Nanoseconds()),
		Dev:     uint64(d.VolumeSerialNumber),
		Ino:     uint64(d.FileIndexHigh)<<32 | uint64(d.FileIndexLow),
		Nlink:   uint64(d.NumberOfLinks),
		Uid:     fileinfo.NoUID,
	}, nil
}

// nameSurrogate reports whether the reparse point open at h stands for
// another name (a symlink, a junction), as opposed to one that marks a
// file's own data (deduplicated or cloud files, which are regular). If
// the tag cannot be read it says true: refusing is the safe side.
func nameSurrogate(h windows.Handle) bool {
	var tag struct {
		FileAttributes uint32
		ReparseTag     uint32
	}
	if err := windows.GetFileInformationByHandleEx(h, windows.FileAttributeTagInfo, (*byte)(unsafe.Pointer(&tag)), uint32(unsafe.Sizeof(tag))); err != nil {
		return true
	}
	return tag.ReparseTag&0x20000000 != 0 // IsReparseTagNameSurrogate
}

// ReadAll reads the file from its start, at most max bytes. A short read
// is taken as the end of the file.
func (f *File) ReadAll(max int) ([]byte, error) {
	buf := make([]byte, min(512, max))
	n := 0
	for n < max {
		if n == len(buf) {
			buf = append(buf, make([]byte, min(len(buf), max-n))...)
		}
		// An offset in the OVERLAPPED makes it a positioned read, like
		// pread: the handle's own position does not matter.
		ov := windows.Overlapped{Offset: uint32(n), OffsetHigh: uint32(uint64(n) >> 32)}
		var m uint32
		err := retrying(func() error { return windows.ReadFile(f.h, buf[n:], &m, &ov) })
		if err == windows.ERROR_HANDLE_EOF {
			break
		}
		if err != nil {
			return nil, pathErr("read", f.path, err)
		}
		n += int(m)
		if m == 0 || n < len(buf) {
			break
		}
	}
	return buf[:n], nil
}

// SetTimes sets the access and modification times of the open file to t.
// It acts on the file that was opened even if its path has since been
// moved or removed.
func (f *File) SetTimes(t time.Time) error {
	return pathErr("chtimes", f.path, setTimes(f.h, t))
}

// Close closes the handle.
func (f *File) Close() error {
	return pathErr("close", f.path, windows.CloseHandle(f.h))
}

// ReadDir lists the names in dir.
func ReadDir(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// stillActive is what GetExitCodeProcess reports for a running process
// (STILL_ACTIVE).
const stillActive = 259

// ProcessAlive reports whether a process with this pid exists on this
// host. A process that exists but that this user may not query counts as
// alive.
func ProcessAlive(pid int) bool {
	if pid <= 0 || uint64(pid) > math.MaxUint32 {
		return false
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, uint32(pid))
	if err == windows.ERROR_ACCESS_DENIED {
		return true
	}
	if err != nil {
		return false // ERROR_INVALID_PARAMETER: no such process
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true // it exists: OpenProcess found it
	}
	if code != stillActive {
		return false
	}
	// A process may have ended with exit code 259 itself: ask its handle.
	ev, err := windows.WaitForSingleObject(h, 0)
	return err != nil || ev == uint32(windows.WAIT_TIMEOUT)
}
