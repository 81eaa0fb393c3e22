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

func (posixFS) CreateExclusive(path string, data []byte) error {
	return posix.CreateExclusive(path, data, 0o644)
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

func (p posixFile) Stat() (Info, error) {
	i, err := p.f.Stat()
	return Info{Size: i.Size, ModTime: i.ModTime, Dev: i.Dev, Ino: i.Ino, Nlink: i.Nlink}, err
}
func (p posixFile) ReadAll(max int) ([]byte, error) { return p.f.ReadAll(max) }
func (p posixFile) SetTimes(t time.Time) error      { return p.f.SetTimes(t) }
func (p posixFile) Close() error                    { return p.f.Close() }
