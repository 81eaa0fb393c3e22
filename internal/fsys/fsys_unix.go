//go:build unix && !aix

package fsys

import (
	"time"

	"github.com/nfsflock/nfsflock/flock/posix"
)

// OS is the real system.
var OS FS = posixFS{}

type posixFS struct{}

func (posixFS) Create(path string, data []byte, t time.Time) (File, error) {
	if t.IsZero() {
		return createKeeping(path, data)
	}
	f, err := posix.CreateExclusive(path, data, 0o644)
	if err != nil {
		return nil, err
	}
	pf := &posixFile{f: f}
	err = f.SetTimes(t)
	if err == nil {
		pf.opened, err = f.Stat()
	}
	if err != nil {
		f.Close()
		posix.Remove(path)
		return nil, err
	}
	pf.fresh = true
	return pf, nil
}

// createKeeping is Create with the times the filesystem gives, which
// leaves the file in place if a step after its creation fails.
func createKeeping(path string, data []byte) (File, error) {
	f, err := posix.CreateExclusive(path, nil, 0o644)
	if err != nil {
		return nil, err
	}
	var i Info
	err = f.Write(data)
	if err == nil {
		i, err = f.Stat()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &posixFile{f: f, opened: i, fresh: true}, nil
}

func (posixFS) Lstat(path string) (Info, error)      { return posix.Lstat(path) }
func (posixFS) Link(oldname, newname string) error   { return posix.Link(oldname, newname) }
func (posixFS) Rename(oldname, newname string) error { return posix.Rename(oldname, newname) }
func (posixFS) RenameNoReplace(oldname, newname string) error {
	return posix.RenameNoReplace(oldname, newname)
}
func (posixFS) Exchange(a, b string) error           { return posix.Exchange(a, b) }
func (posixFS) Remove(path string) error             { return posix.Remove(path) }
func (posixFS) ReadDir(dir string) ([]string, error) { return posix.ReadDir(dir) }
func (posixFS) ProcessAlive(pid int) bool            { return posix.ProcessAlive(pid) }
func (posixFS) Namespace() uint64                    { return namespace() }

func (posixFS) Open(path string) (File, error) {
	f, err := posix.Open(path)
	if err != nil {
		return nil, err
	}
	return &posixFile{f: f, opened: f.Info(), fresh: true}, nil
}

type posixFile struct {
	f      *posix.File
	opened Info // what Open or Create read
	fresh  bool // opened has not been returned yet
}

func (p *posixFile) Stat() (Info, error) {
	if p.fresh {
		p.fresh = false
		return p.opened, nil
	}
	return p.f.Stat()
}
func (p *posixFile) ReadAll(max int) ([]byte, error) { return p.f.ReadAll(max) }
func (p *posixFile) SetTimes(t time.Time) error      { return p.f.SetTimes(t) }
func (p *posixFile) Close() error                    { return p.f.Close() }
