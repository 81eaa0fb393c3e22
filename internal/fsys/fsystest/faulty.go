// Package fsystest holds test doubles for the filesystem seam: a wrapper
// whose hooks inject what a real filesystem cannot be made to do on demand
// (a lost reply, a link count of 1).
package fsystest

import (
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Faulty wraps an FS for tests. Each hook that is set replaces the call of
// the same name and receives the wrapped call as next, so it can fail
// before, after or instead of the real operation.
type Faulty struct {
	fsys.FS
	OnCreate          func(next func(path string, data []byte, t time.Time) (fsys.File, error), path string, data []byte, t time.Time) (fsys.File, error)
	OnLink            func(next func(oldname, newname string) error, oldname, newname string) error
	OnRename          func(next func(oldname, newname string) error, oldname, newname string) error
	OnRenameNoReplace func(next func(oldname, newname string) error, oldname, newname string) error
	OnExchange        func(next func(a, b string) error, a, b string) error
	OnRemove          func(next func(path string) error, path string) error
	OnOpen            func(next func(path string) (fsys.File, error), path string) (fsys.File, error)
	OnLstat           func(next func(path string) (fsys.Info, error), path string) (fsys.Info, error)
	OnReadDir         func(next func(dir string) ([]string, error), dir string) ([]string, error)
}

// Create calls OnCreate if set.
func (f *Faulty) Create(path string, data []byte, t time.Time) (fsys.File, error) {
	if f.OnCreate != nil {
		return f.OnCreate(f.FS.Create, path, data, t)
	}
	return f.FS.Create(path, data, t)
}

// Link calls OnLink if set.
func (f *Faulty) Link(oldname, newname string) error {
	if f.OnLink != nil {
		return f.OnLink(f.FS.Link, oldname, newname)
	}
	return f.FS.Link(oldname, newname)
}

// Rename calls OnRename if set.
func (f *Faulty) Rename(oldname, newname string) error {
	if f.OnRename != nil {
		return f.OnRename(f.FS.Rename, oldname, newname)
	}
	return f.FS.Rename(oldname, newname)
}

// RenameNoReplace calls OnRenameNoReplace if set.
func (f *Faulty) RenameNoReplace(oldname, newname string) error {
	if f.OnRenameNoReplace != nil {
		return f.OnRenameNoReplace(f.FS.RenameNoReplace, oldname, newname)
	}
	return f.FS.RenameNoReplace(oldname, newname)
}

// Exchange calls OnExchange if set.
func (f *Faulty) Exchange(a, b string) error {
	if f.OnExchange != nil {
		return f.OnExchange(f.FS.Exchange, a, b)
	}
	return f.FS.Exchange(a, b)
}

// Remove calls OnRemove if set.
func (f *Faulty) Remove(path string) error {
	if f.OnRemove != nil {
		return f.OnRemove(f.FS.Remove, path)
	}
	return f.FS.Remove(path)
}

// Open calls OnOpen if set.
func (f *Faulty) Open(path string) (fsys.File, error) {
	if f.OnOpen != nil {
		return f.OnOpen(f.FS.Open, path)
	}
	return f.FS.Open(path)
}

// Lstat calls OnLstat if set.
func (f *Faulty) Lstat(path string) (fsys.Info, error) {
	if f.OnLstat != nil {
		return f.OnLstat(f.FS.Lstat, path)
	}
	return f.FS.Lstat(path)
}

// ReadDir calls OnReadDir if set.
func (f *Faulty) ReadDir(dir string) ([]string, error) {
	if f.OnReadDir != nil {
		return f.OnReadDir(f.FS.ReadDir, dir)
	}
	return f.FS.ReadDir(dir)
}

// NoIdentity wraps a File so that it reports what sshfs and SMB report: a
// link count of 1 and no usable inode number.
type NoIdentity struct{ fsys.File }

// Stat reports the file without its identity.
func (n NoIdentity) Stat() (fsys.Info, error) {
	i, err := n.File.Stat()
	return noIdentity(i), err
}

func noIdentity(i fsys.Info) fsys.Info {
	i.Nlink, i.Ino, i.Dev = 1, 0, 0
	return i
}

// NoIdentityFS wraps an FS so that every file reports a link count of 1
// and no inode number, as on sshfs and SMB.
func NoIdentityFS(fs fsys.FS) *Faulty {
	return &Faulty{FS: &noIdentityFS{fs}}
}

type noIdentityFS struct{ fsys.FS }

func (n *noIdentityFS) Create(path string, data []byte, t time.Time) (fsys.File, error) {
	f, err := n.FS.Create(path, data, t)
	if err != nil {
		return nil, err
	}
	return NoIdentity{f}, nil
}

func (n *noIdentityFS) Open(path string) (fsys.File, error) {
	f, err := n.FS.Open(path)
	if err != nil {
		return nil, err
	}
	return NoIdentity{f}, nil
}

func (n *noIdentityFS) Lstat(path string) (fsys.Info, error) {
	i, err := n.FS.Lstat(path)
	return noIdentity(i), err
}

// Direct answers as the wrapped FS does (see fsys.Direct), so that a Lock
// on the wrapper looks at the lock file as it would on the real thing;
// but false where OnOpen is set when the Lock asks (at its first claim):
// a test that hooks opens means every look to open the file, which a look
// by Lstat alone would not.
func (f *Faulty) Direct(dir string) bool {
	if f.OnOpen != nil {
		return false
	}
	d, ok := f.FS.(fsys.Direct)
	return ok && d.Direct(dir)
}

// Swaps answers as the wrapped FS does (see fsys.Swapper), but false
// where OnOpen is set, as Direct is: a test that hooks opens stages a
// filesystem where names are moved aside, not swapped.
func (f *Faulty) Swaps(dir string) bool {
	if f.OnOpen != nil {
		return false
	}
	s, ok := f.FS.(fsys.Swapper)
	return ok && s.Swaps(dir)
}
