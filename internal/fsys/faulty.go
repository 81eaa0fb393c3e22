package fsys

import "time"

// Faulty wraps an FS for tests. Each hook that is set replaces the call of
// the same name and receives the wrapped call as next, so it can fail
// before, after or instead of the real operation.
type Faulty struct {
	FS
	OnLink     func(next func(oldname, newname string) error, oldname, newname string) error
	OnRename   func(next func(oldname, newname string) error, oldname, newname string) error
	OnRemove   func(next func(path string) error, path string) error
	OnOpen     func(next func(path string) (File, error), path string) (File, error)
	OnSetTimes func(next func(path string, t time.Time) error, path string, t time.Time) error
}

func (f *Faulty) Link(oldname, newname string) error {
	if f.OnLink != nil {
		return f.OnLink(f.FS.Link, oldname, newname)
	}
	return f.FS.Link(oldname, newname)
}

func (f *Faulty) Rename(oldname, newname string) error {
	if f.OnRename != nil {
		return f.OnRename(f.FS.Rename, oldname, newname)
	}
	return f.FS.Rename(oldname, newname)
}

func (f *Faulty) Remove(path string) error {
	if f.OnRemove != nil {
		return f.OnRemove(f.FS.Remove, path)
	}
	return f.FS.Remove(path)
}

func (f *Faulty) Open(path string) (File, error) {
	if f.OnOpen != nil {
		return f.OnOpen(f.FS.Open, path)
	}
	return f.FS.Open(path)
}

func (f *Faulty) SetTimes(path string, t time.Time) error {
	if f.OnSetTimes != nil {
		return f.OnSetTimes(f.FS.SetTimes, path, t)
	}
	return f.FS.SetTimes(path, t)
}

// NoIdentity wraps a File so that it reports what sshfs and SMB report: a
// link count of 1 and no usable inode number.
type NoIdentity struct{ File }

func (n NoIdentity) Stat() (Info, error) {
	i, err := n.File.Stat()
	return noIdentity(i), err
}

func noIdentity(i Info) Info {
	i.Nlink, i.Ino, i.Dev = 1, 0, 0
	return i
}

// NoIdentityFS wraps an FS so that every file reports a link count of 1
// and no inode number, as on sshfs and SMB.
func NoIdentityFS(fs FS) *Faulty {
	return &Faulty{
		FS: &noIdentityFS{fs},
		OnOpen: func(next func(string) (File, error), p string) (File, error) {
			f, err := next(p)
			if err != nil {
				return nil, err
			}
			return NoIdentity{f}, nil
		},
	}
}

type noIdentityFS struct{ FS }

func (n *noIdentityFS) CreateExclusive(path string, data []byte, t time.Time) (Info, error) {
	i, err := n.FS.CreateExclusive(path, data, t)
	return noIdentity(i), err
}

func (n *noIdentityFS) Lstat(path string) (Info, error) {
	i, err := n.FS.Lstat(path)
	return noIdentity(i), err
}
