//go:build unix && !aix

package fsys

import (
	"errors"
	"io/fs"
	"time"

	"github.com/nfsflock/nfsflock/flock/posix"
)

// OS is the real system.
var OS FS = posixFS{}

type posixFS struct{}

func (posixFS) CreateExclusive(path string, data []byte, t time.Time) (Info, error) {
	f, err := posix.CreateExclusive(path, data, 0o644)
	if err != nil {
		return Info{}, err
	}
	var i posix.Info
	err = f.SetTimes(t)
	if err == nil {
		i, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		posix.Remove(path)
		return Info{}, err
	}
	return infoOf(i), nil
}

func (posixFS) Lstat(path string) (Info, error) {
	i, err := posix.Lstat(path)
	return infoOf(i), err
}

func infoOf(i posix.Info) Info {
	return Info{Mode: i.Mode, Size: i.Size, ModTime: i.ModTime, Dev: i.Dev, Ino: i.Ino, Nlink: i.Nlink}
}
func (posixFS) Link(oldname, newname string) error      { return posix.Link(oldname, newname) }
func (posixFS) Rename(oldname, newname string) error    { return posix.Rename(oldname, newname) }
func (posixFS) Remove(path string) error                { return posix.Remove(path) }
func (posixFS) SetTimes(path string, t time.Time) error { return posix.SetTimes(path, t) }
func (posixFS) ReadDir(dir string) ([]string, error)    { return posix.ReadDir(dir) }
func (posixFS) ProcessAlive(pid int) bool               { return posix.ProcessAlive(pid) }

func (posixFS) Open(path string) (File, error) {
	f, err := posix.Open(path)
	if err != nil {
		var nr *posix.NotRegularError
		var pe *fs.PathError
		if errors.As(err, &nr) && errors.As(err, &pe) {
			return nil, &fs.PathError{Op: pe.Op, Path: pe.Path, Err: &NotRegularError{Kind: Kind(nr.Mode)}}
		}
		return nil, err
	}
	return posixFile{f}, nil
}

type posixFile struct{ f *posix.File }

// Stat returns what Open read through the new descriptor.
func (p posixFile) Stat() (Info, error)             { return infoOf(p.f.Info()), nil }
func (p posixFile) ReadAll(max int) ([]byte, error) { return p.f.ReadAll(max) }
func (p posixFile) SetTimes(t time.Time) error      { return p.f.SetTimes(t) }
func (p posixFile) Close() error                    { return p.f.Close() }
