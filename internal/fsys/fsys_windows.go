package fsys

import (
	"errors"
	"time"

	"github.com/nfsflock/nfsflock/flock/windows"
)

// OS is the real system: on Windows, flock/windows. Namespace is 0 here:
// Windows has one pid space per boot, but nothing this package can read
// identifies the boot cheaply, so dead owners' claims are not swept.
var OS FS = windowsFS{}

type windowsFS struct{}

func (windowsFS) Create(path string, data []byte, t time.Time) (File, error) {
	f, err := windows.CreateExclusive(path, data, 0o644)
	if err != nil {
		return nil, err
	}
	pf := &windowsFile{f: f}
	// A zero t keeps the times the write gave, and a later failure keeps
	// the file, for the caller to judge (see FS.Create).
	keep := t.IsZero()
	if !keep {
		err = f.SetTimes(t)
	}
	if err == nil {
		pf.opened, err = f.Stat()
	}
	if err != nil {
		f.Close()
		if !keep {
			windows.Remove(path)
		}
		return nil, err
	}
	pf.fresh = true
	return pf, nil
}

func (windowsFS) Lstat(path string) (Info, error)      { return windows.Lstat(path) }
func (windowsFS) Link(oldname, newname string) error   { return windows.Link(oldname, newname) }
func (windowsFS) Rename(oldname, newname string) error { return windows.Rename(oldname, newname) }
func (windowsFS) RenameNoReplace(oldname, newname string) error {
	return windows.RenameNoReplace(oldname, newname)
}

// Exchange is not offered: Windows has no call that swaps two names.
func (windowsFS) Exchange(string, string) error        { return errors.ErrUnsupported }
func (windowsFS) Remove(path string) error             { return windows.Remove(path) }
func (windowsFS) ReadDir(dir string) ([]string, error) { return windows.ReadDir(dir) }
func (windowsFS) ProcessAlive(pid int) bool            { return windows.ProcessAlive(pid) }
func (windowsFS) Namespace() uint64                    { return namespace() }

func (windowsFS) Open(path string) (File, error) {
	f, err := windows.Open(path)
	if err != nil {
		return nil, err
	}
	return &windowsFile{f: f, opened: f.Info(), fresh: true}, nil
}

type windowsFile struct {
	f      *windows.File
	opened Info // what Open or Create read
	fresh  bool // opened has not been returned yet
}

func (p *windowsFile) Stat() (Info, error) {
	if p.fresh {
		p.fresh = false
		return p.opened, nil
	}
	return p.f.Stat()
}
func (p *windowsFile) ReadAll(max int) ([]byte, error) { return p.f.ReadAll(max) }
func (p *windowsFile) SetTimes(t time.Time) error      { return p.f.SetTimes(t) }
func (p *windowsFile) Close() error                    { return p.f.Close() }
