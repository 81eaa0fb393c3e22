package simfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Proc is one process of a host: its pid, and its calls on the
// filesystem through its host's mount. It implements [fsys.FS]; its
// errors are those of the real system (*fs.PathError and *os.LinkError
// wrapping a syscall.Errno).
type Proc struct {
	h     *Host
	ns    *Namespace
	pid   int
	step  Stepper
	files map[*file]bool // open descriptors that pin their inode
}

var _ fsys.FS = (*Proc)(nil)

var _ fsys.Direct = (*Proc)(nil)

// Direct reports whether the host's mount is a local disk's: no attribute
// cache, inode numbers of the files themselves, and open descriptors that
// pin their inode.
func (p *Proc) Direct(string) bool {
	c := p.h.cfg
	return c.Cache == CacheNone && !c.PathInodes && !c.StaleHandles
}

// PID returns the process's pid in its namespace.
func (p *Proc) PID() int { return p.pid }

// Host returns the process's host.
func (p *Proc) Host() *Host { return p.h }

// Exit ends the process, however it ends: its pid no longer runs and its
// descriptors are closed. Its files stay.
func (p *Proc) Exit() {
	p.h.s.mu.Lock()
	defer p.h.s.mu.Unlock()
	delete(p.ns.alive, p.pid)
	for f := range p.files {
		f.unpin()
	}
}

// Alive reports whether the process has not exited.
func (p *Proc) Alive() bool {
	p.h.s.mu.Lock()
	defer p.h.s.mu.Unlock()
	return p.ns.alive[p.pid]
}

// run hands c to the Stepper, or applies it at once. The model is only
// ever touched under the server's lock, from whichever goroutine the
// Stepper applies the call in.
func (p *Proc) run(c *Call, apply func()) {
	c.Proc = p
	// What a call that never happens reports.
	if c.Path2 != "" {
		c.Err = linkErr(c.Op, c.Path, c.Path2, syscall.EIO)
	} else {
		c.Err = pathErr(c.Op, c.Path, syscall.EIO)
	}
	do := func() {
		p.h.s.mu.Lock()
		defer p.h.s.mu.Unlock()
		c.Err = nil
		apply()
	}
	if p.step == nil {
		do()
		return
	}
	p.step(c, do)
}

func pathErr(op, p string, e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return &fs.PathError{Op: op, Path: p, Err: e}
}

func linkErr(op, oldname, newname string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
}

// lose decides whether the reply to a call that succeeded is lost. If it
// is, redo is the retransmission, whose answer the caller gets.
func (p *Proc) lose(c *Call, redo func() syscall.Errno) syscall.Errno {
	if p.h.cfg.LostReplies <= 0 || p.h.s.rng.Float64() >= p.h.cfg.LostReplies {
		return 0
	}
	c.Lost = true
	return redo()
}

// Create creates name exclusively with contents data and both times t, and
// returns it open. A zero t leaves the times as the write stamped them:
// the server's clock, or the host's where it stamps its own.
func (p *Proc) Create(name string, data []byte, t time.Time) (fsys.File, error) {
	name = clean(name)
	if t.IsZero() {
		return p.createKeeping(name, data)
	}
	c := &Call{Op: "create", Path: name, Time: t}
	var f *file
	p.run(c, func() {
		s, h := p.h.s, p.h
		if t.IsZero() && h.cfg.ClientStamps {
			t = h.Now().Round(0).UTC()
		}
		in, e := s.create(c, name, data, h.trunc(t), h.cfg.UID)
		if e == 0 {
			h.dirChanged(name)
			h.changed(in, name)
			if e = p.lose(c, func() syscall.Errno {
				_, e := s.create(nil, name, data, h.trunc(t), h.cfg.UID)
				return e
			}); e != 0 {
				c.Err = pathErr("open", name, e)
				return
			}
			opened := h.fresh(in, name)
			stale := opened
			stale.ModTime = h.trunc(in.ctime) // as written, before its times were set
			stale.ChangeTime = stale.ModTime
			isStale := h.maybeStale(in, name, stale)
			if isStale {
				opened = stale
			}
			f = p.open(in, name, opened)
			c.Result = fmt.Sprintf("#%d ino %d", in.id, f.opened.Ino)
			if isStale {
				c.Result += " (stale attributes cached)"
			}
			return
		}
		c.Err = pathErr("open", name, e)
	})
	if c.Err != nil {
		return nil, c.Err
	}
	return f, nil
}

// Lstat returns the attributes of name, from the host's cache where its
// rules allow.
func (p *Proc) Lstat(name string) (fsys.Info, error) {
	name = clean(name)
	c := &Call{Op: "lstat", Path: name}
	var info fsys.Info
	p.run(c, func() {
		h := p.h
		if h.cfg.Cache == CacheSSHFS {
			if a, ok := h.pathAttrs[name]; ok && h.s.now().Before(a.until) {
				info = a.info
				c.Result = describe(info) + " (cached)"
				return
			}
		}
		in, e := h.s.lookup(name)
		if e != 0 {
			c.Err = pathErr("lstat", name, e)
			return
		}
		info = h.attrsOf(in, name, false)
		c.Result = describe(info)
	})
	return info, c.Err
}

func describe(i fsys.Info) string {
	s := fmt.Sprintf("ino %d nlink %d mtime %s", i.Ino, i.Nlink, i.ModTime.UTC().Format("15:04:05.000000000"))
	if !i.Mode.IsRegular() {
		s += " " + fsys.Kind(i.Mode)
	}
	return s
}

// Link makes newname a hard link to oldname.
func (p *Proc) Link(oldname, newname string) error {
	oldname, newname = clean(oldname), clean(newname)
	c := &Call{Op: "link", Path: oldname, Path2: newname}
	p.run(c, func() {
		s, h := p.h.s, p.h
		if h.cfg.NoHardLinks {
			if _, e := s.lookup(oldname); e != 0 {
				c.Err = linkErr("link", oldname, newname, e)
			} else {
				c.Err = linkErr("link", oldname, newname, syscall.EPERM)
			}
			return
		}
		e := s.link(c, oldname, newname)
		if e == syscall.EEXIST && h.cfg.LinkRaceEPERM > 0 && s.rng.Float64() < h.cfg.LinkRaceEPERM {
			e = syscall.EPERM
		}
		if e == 0 {
			in := s.names[newname]
			h.dirChanged(newname)
			h.changed(in, oldname)
			h.changed(in, newname)
			e = p.lose(c, func() syscall.Errno { return s.link(nil, oldname, newname) })
		}
		c.Err = linkErr("link", oldname, newname, errOrNil(e))
	})
	return c.Err
}

func errOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Rename moves oldname to newname, replacing what is there.
func (p *Proc) Rename(oldname, newname string) error {
	return p.rename("rename", oldname, newname, false)
}

// RenameNoReplace moves oldname to newname unless newname exists; on a
// mount configured with NoRenameNoReplace it fails with
// errors.ErrUnsupported.
func (p *Proc) RenameNoReplace(oldname, newname string) error {
	return p.rename("renamenoreplace", oldname, newname, true)
}

func (p *Proc) rename(op, oldname, newname string, noReplace bool) error {
	oldname, newname = clean(oldname), clean(newname)
	c := &Call{Op: op, Path: oldname, Path2: newname}
	p.run(c, func() {
		s, h := p.h.s, p.h
		if noReplace && h.cfg.NoRenameNoReplace {
			c.Err = linkErr("rename", oldname, newname, errors.ErrUnsupported)
			return
		}
		in := s.names[oldname]
		replaced := s.names[newname]
		e := s.rename(c, oldname, newname, noReplace)
		if e == 0 {
			h.dirChanged(oldname)
			h.dirChanged(newname)
			h.moved(oldname, newname)
			h.changed(in, newname)
			if replaced != nil && replaced != in {
				h.changed(replaced, newname)
			}
			e = p.lose(c, func() syscall.Errno { return s.rename(nil, oldname, newname, noReplace) })
		}
		c.Err = linkErr("rename", oldname, newname, errOrNil(e))
	})
	return c.Err
}

// Exchange swaps the files at a and b. Only a local disk's mount (see
// Direct) offers it; elsewhere it fails with errors.ErrUnsupported, as
// NFS and sshfs refuse RENAME_EXCHANGE. Local disks lose no replies.
func (p *Proc) Exchange(a, b string) error {
	a, b = clean(a), clean(b)
	c := &Call{Op: "exchange", Path: a, Path2: b}
	p.run(c, func() {
		s, h := p.h.s, p.h
		if !p.Direct(dirOf(b)) {
			c.Err = linkErr("exchange", a, b, errors.ErrUnsupported)
			return
		}
		ina, inb := s.names[a], s.names[b]
		e := s.exchange(c, a, b)
		if e == 0 {
			h.dirChanged(a)
			h.dirChanged(b)
			h.exchanged(a, b)
			h.changed(ina, b)
			h.changed(inb, a)
		}
		c.Err = linkErr("exchange", a, b, errOrNil(e))
	})
	return c.Err
}

// Remove unlinks name.
func (p *Proc) Remove(name string) error {
	name = clean(name)
	c := &Call{Op: "remove", Path: name}
	p.run(c, func() {
		s, h := p.h.s, p.h
		in := s.names[name]
		e := s.remove(c, name)
		if e == 0 {
			h.dirChanged(name)
			h.unlinked(name)
			h.changed(in, name)
			e = p.lose(c, func() syscall.Errno { return s.remove(nil, name) })
		}
		c.Err = pathErr("remove", name, e)
	})
	return c.Err
}

// Open opens name, which must be a regular file, for inspection.
func (p *Proc) Open(name string) (fsys.File, error) {
	name = clean(name)
	c := &Call{Op: "open", Path: name}
	var f *file
	p.run(c, func() {
		h := p.h
		in, e := h.s.lookup(name)
		if e != 0 {
			c.Err = pathErr("open", name, e)
			return
		}
		if !in.mode.IsRegular() {
			c.Err = &fs.PathError{Op: "open", Path: name, Err: &fsys.NotRegularError{Kind: fsys.Kind(in.mode)}}
			return
		}
		// NFS revalidates on open; sshfs answers from its cache by path.
		info := h.attrsOf(in, name, true)
		f = p.open(in, name, info)
		c.Result = fmt.Sprintf("#%d %s", in.id, describe(info))
	})
	if c.Err != nil {
		return nil, c.Err
	}
	return f, nil
}

func (p *Proc) open(in *inode, name string, info fsys.Info) *file {
	f := &file{p: p, in: in, path: name, opened: info, fresh: true}
	if !p.h.cfg.StaleHandles {
		f.pinned = true
		in.pins++
		if p.files == nil {
			p.files = map[*file]bool{}
		}
		p.files[f] = true
	}
	return f
}

// ReadDir lists the names in dir, from the host's cached listing where one
// is still held.
func (p *Proc) ReadDir(dir string) ([]string, error) {
	dir = clean(dir)
	c := &Call{Op: "readdir", Path: dir}
	var names []string
	p.run(c, func() {
		in, e := p.h.s.lookup(dir)
		if e == 0 && !in.mode.IsDir() {
			e = syscall.ENOTDIR
		}
		if e != 0 {
			c.Err = pathErr("open", dir, e)
			return
		}
		names = slices.Clone(p.h.readDir(dir))
		c.Result = fmt.Sprintf("%d names", len(names))
	})
	return names, c.Err
}

// ProcessAlive reports whether pid runs in this process's pid namespace.
func (p *Proc) ProcessAlive(pid int) bool {
	c := &Call{Op: "alive", Path: ""}
	alive := false
	p.run(c, func() {
		alive = p.ns.alive[pid]
		c.Result = fmt.Sprintf("pid %d %v", pid, alive)
	})
	return alive
}

// Namespace reports the process's namespace tag (see [Namespace.Tag]).
func (p *Proc) Namespace() uint64 { return p.ns.Tag() }

// file is an open descriptor of a Proc.
type file struct {
	p      *Proc
	in     *inode
	path   string // as opened
	opened fsys.Info
	fresh  bool
	pinned bool
	closed bool
}

// gone reports whether the descriptor's file is stale: removed from the
// server, on a mount whose handles go stale.
func (f *file) gone() bool {
	return f.p.h.cfg.StaleHandles && f.in.nlink == 0
}

func (f *file) Stat() (fsys.Info, error) {
	c := &Call{Op: "stat", Path: f.path}
	var info fsys.Info
	f.p.run(c, func() {
		h := f.p.h
		switch {
		case f.closed:
			c.Err = pathErr("stat", f.path, syscall.EBADF)
		case f.fresh:
			f.fresh = false
			info = f.opened
		case h.cfg.Cache == CacheNFS:
			if a, ok := h.attrs[f.in.id]; ok && h.s.now().Before(a.until) {
				info = a.info
			} else if f.gone() {
				c.Err = pathErr("stat", f.path, syscall.ESTALE)
			} else {
				info = h.attrsOf(f.in, f.path, true)
			}
		case h.cfg.Cache == CacheSSHFS:
			info = h.attrsOf(f.in, f.path, false)
		case f.gone():
			c.Err = pathErr("stat", f.path, syscall.ESTALE)
		default:
			info = h.fresh(f.in, f.path)
		}
		if c.Err == nil {
			c.Result = describe(info)
		}
	})
	return info, c.Err
}

func (f *file) ReadAll(max int) ([]byte, error) {
	c := &Call{Op: "read", Path: f.path}
	var data []byte
	f.p.run(c, func() {
		switch {
		case f.closed:
			c.Err = pathErr("read", f.path, syscall.EBADF)
			return
		case f.gone():
			c.Err = pathErr("read", f.path, syscall.ESTALE)
			return
		}
		data = f.in.data
		if f.p.h.cfg.Cache == CacheSSHFS && int64(len(data)) > f.opened.Size {
			// The kernel reads no further than the size it has cached.
			data = data[:f.opened.Size]
		}
		data = slices.Clone(data[:min(len(data), max)])
		c.Result = fmt.Sprintf("%d bytes", len(data))
	})
	return data, c.Err
}

func (f *file) SetTimes(t time.Time) error {
	c := &Call{Op: "settimes", Path: f.path, Time: t}
	f.p.run(c, func() {
		switch {
		case f.closed:
			c.Err = pathErr("chtimes", f.path, syscall.EBADF)
			return
		case f.gone():
			c.Err = pathErr("chtimes", f.path, syscall.ESTALE)
			return
		}
		h := f.p.h
		in := f.in
		if h.cfg.SetTimesByPath && in.nlink == 0 {
			// sshfs sets times by the path the file was opened by,
			// which may name another file by now.
			var ok bool
			if in, ok = h.s.names[f.path]; !ok {
				c.Err = pathErr("chtimes", f.path, syscall.ENOENT)
				return
			}
		}
		before := h.fresh(in, f.path)
		h.s.setTimes(c, in, h.trunc(t))
		h.changed(in, f.path)
		c.Result = fmt.Sprintf("#%d", in.id)
		if h.maybeStale(in, f.path, before) {
			c.Result += " (stale attributes cached)"
		}
	})
	return c.Err
}

func (f *file) Close() error {
	c := &Call{Op: "close", Path: f.path}
	f.p.run(c, func() {
		if f.closed {
			c.Err = pathErr("close", f.path, syscall.EBADF)
			return
		}
		f.closed = true
		f.unpin()
	})
	return c.Err
}

// unpin lets the inode go once the descriptor is closed.
func (f *file) unpin() {
	if !f.pinned {
		return
	}
	f.pinned = false
	delete(f.p.files, f)
	f.in.pins--
	f.p.h.s.release(f.in)
}

func dirOf(p string) string { return path.Dir(p) }

// createKeeping is Create with zero times, as fsys.OS does it: an
// exclusive create of an empty file, timed by the server, then a write of
// its contents through the descriptor, a call of its own; a failure after
// the create leaves the file.
func (p *Proc) createKeeping(name string, data []byte) (fsys.File, error) {
	c := &Call{Op: "create", Path: name}
	var f *file
	// The times a write without explicit times gets: the server's, or
	// where the mount stamps with the host's clock, that.
	stamp := func() time.Time {
		if p.h.cfg.ClientStamps {
			return p.h.Now().Round(0).UTC()
		}
		return p.h.s.stamp()
	}
	p.run(c, func() {
		s, h := p.h.s, p.h
		in, e := s.create(c, name, nil, h.trunc(stamp()), h.cfg.UID)
		if e == 0 {
			h.dirChanged(name)
			h.changed(in, name)
			if e = p.lose(c, func() syscall.Errno {
				_, e := s.create(nil, name, nil, h.trunc(stamp()), h.cfg.UID)
				return e
			}); e != 0 {
				c.Err = pathErr("open", name, e)
				return
			}
			f = p.open(in, name, h.fresh(in, name))
			c.Result = fmt.Sprintf("#%d ino %d (empty)", in.id, f.opened.Ino)
			return
		}
		c.Err = pathErr("open", name, e)
	})
	if c.Err != nil {
		return nil, c.Err
	}
	w := &Call{Op: "write", Path: name}
	p.run(w, func() {
		if f.gone() {
			w.Err = pathErr("write", name, syscall.ESTALE)
			return
		}
		s, h := p.h.s, p.h
		f.in.data = slices.Clone(data)
		s.setTimes(w, f.in, h.trunc(stamp()))
		h.changed(f.in, name)
		w.Result = fmt.Sprintf("#%d %d bytes", f.in.id, len(data))
	})
	if w.Err != nil {
		f.Close()
		return nil, w.Err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	f.opened, f.fresh = info, true
	return f, nil
}
