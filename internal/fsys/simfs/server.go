// Package simfs is an in-memory model of a network filesystem for
// deterministic simulation: one [Server] holds names and inodes, and each
// simulated host sees it through a [Host], a client with the caches and
// faults of a local disk, an NFS mount or an sshfs mount. Each process on a
// host gets a [Proc], which implements [fsys.FS].
//
// Every random choice (a lost reply, how long an attribute stays cached)
// comes from the *rand.Rand given to [NewServer], and every call can be
// handed to a [Stepper] that decides when it happens, so that a seed
// determines a whole run.
package simfs

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is the filesystem itself: names, inodes, link counts, contents and
// times, as the server's disk holds them. Its methods that are not calls of
// a client (MkdirAll, WriteFile, Lookup...) set up and inspect a run; they
// bypass every cache and every Stepper.
type Server struct {
	mu    sync.Mutex
	rng   *rand.Rand
	now   func() time.Time
	names map[string]*inode // cleaned absolute path → inode; "/" included
	live  map[uint64]*inode // by id: every inode with a name or a pin
	used  map[uint64]bool   // inode numbers in use
	next  uint64            // id of the next inode; ids are never reused
	hosts []*Host
}

// inode is one file. Its id identifies it for the life of the server; its
// ino is the number a client sees, handed out lowest-free as ext4 does, so a
// freed number comes back at once.
type inode struct {
	id    uint64
	ino   uint64
	mode  fs.FileMode
	nlink int
	data  []byte
	mtime time.Time // as stored: no monotonic reading, UTC
	ctime time.Time // the server's clock at the last change (see stamp)
	uid   uint32
	pins  int // open descriptors that keep the inode alive (local disks)
}

// firstIno is the lowest inode number handed out; ext4 starts regular
// files above its reserved inodes.
const firstIno = 12

// NewServer returns an empty filesystem holding only "/". rng supplies every
// random choice of the server and its hosts; now is the true time, by which
// caches age (in a testing/synctest bubble, time.Now).
func NewServer(rng *rand.Rand, now func() time.Time) *Server {
	s := &Server{
		rng:   rng,
		now:   now,
		names: map[string]*inode{},
		live:  map[uint64]*inode{},
		used:  map[uint64]bool{},
	}
	root := s.newInode(fs.ModeDir|0o755, nil, time.Time{}, 0)
	root.nlink = 2
	s.names["/"] = root
	return s
}

func (s *Server) newInode(mode fs.FileMode, data []byte, mtime time.Time, uid uint32) *inode {
	s.next++
	n := uint64(firstIno)
	for s.used[n] {
		n++
	}
	s.used[n] = true
	in := &inode{id: s.next, ino: n, mode: mode, data: slices.Clone(data), mtime: mtime.Round(0).UTC(), ctime: s.stamp(), uid: uid}
	s.live[in.id] = in
	return in
}

// stampGrain is the granularity of the server's own stamps: Linux stamps
// files with a coarse clock, a scheduler tick behind the true time at most.
const stampGrain = 4 * time.Millisecond

// stamp is the server's clock as it stamps a change: the true time, cut
// to the coarse clock's tick.
func (s *Server) stamp() time.Time { return s.now().Round(0).UTC().Truncate(stampGrain) }

// release frees an inode once nothing names or pins it.
func (s *Server) release(in *inode) {
	if in.nlink > 0 || in.pins > 0 || s.live[in.id] != in {
		return
	}
	delete(s.live, in.id)
	delete(s.used, in.ino)
}

// clean makes p absolute and clean; the model has no current directory.
func clean(p string) string {
	return path.Clean("/" + p)
}

// parent checks that the directory holding p exists.
func (s *Server) parent(p string) syscall.Errno {
	d, ok := s.names[path.Dir(p)]
	switch {
	case !ok:
		return syscall.ENOENT
	case !d.mode.IsDir():
		return syscall.ENOTDIR
	}
	return 0
}

func (s *Server) lookup(p string) (*inode, syscall.Errno) {
	if p != "/" {
		if e := s.parent(p); e != 0 {
			return nil, e
		}
	}
	in, ok := s.names[p]
	if !ok {
		return nil, syscall.ENOENT
	}
	return in, 0
}

func (s *Server) create(c *Call, p string, data []byte, t time.Time, uid uint32) (*inode, syscall.Errno) {
	if e := s.parent(p); e != 0 {
		return nil, e
	}
	if _, ok := s.names[p]; ok {
		return nil, syscall.EEXIST
	}
	if t.IsZero() {
		t = s.stamp() // written without explicit times
	}
	in := s.newInode(0o644, data, t, uid)
	in.nlink = 1
	s.names[p] = in
	c.effect(Effect{Kind: Created, Path: p, ID: in.id, Time: in.mtime})
	return in, 0
}

func (s *Server) link(c *Call, oldname, newname string) syscall.Errno {
	in, e := s.lookup(oldname)
	if e != 0 {
		return e
	}
	if in.mode.IsDir() {
		return syscall.EPERM
	}
	if e := s.parent(newname); e != 0 {
		return e
	}
	if _, ok := s.names[newname]; ok {
		return syscall.EEXIST
	}
	in.nlink++
	in.ctime = s.stamp()
	s.names[newname] = in
	c.effect(Effect{Kind: Linked, Path: newname, Path2: oldname, ID: in.id})
	return 0
}

func (s *Server) unlinkName(c *Call, p string, kind EffectKind) {
	in := s.names[p]
	delete(s.names, p)
	in.nlink--
	in.ctime = s.stamp()
	c.effect(Effect{Kind: kind, Path: p, ID: in.id})
	s.release(in)
}

func (s *Server) rename(c *Call, oldname, newname string, noReplace bool) syscall.Errno {
	in, e := s.lookup(oldname)
	if e != 0 {
		return e
	}
	if e := s.parent(newname); e != 0 {
		return e
	}
	if oldname == "/" || newname == "/" {
		return syscall.EBUSY
	}
	if in.mode.IsDir() && strings.HasPrefix(newname, oldname+"/") {
		return syscall.EINVAL
	}
	old, exists := s.names[newname]
	switch {
	case exists && noReplace:
		return syscall.EEXIST
	case exists && old == in:
		// POSIX: two links to one file; nothing happens.
		return 0
	case exists && in.mode.IsDir() && !old.mode.IsDir():
		return syscall.ENOTDIR
	case exists && !in.mode.IsDir() && old.mode.IsDir():
		return syscall.EISDIR
	case exists && old.mode.IsDir() && len(s.list(newname)) > 0:
		return syscall.ENOTEMPTY
	}
	if exists {
		s.unlinkName(c, newname, Replaced)
	}
	delete(s.names, oldname)
	s.names[newname] = in
	in.ctime = s.stamp()
	if in.mode.IsDir() {
		for p, child := range s.names {
			if rest, ok := strings.CutPrefix(p, oldname+"/"); ok {
				delete(s.names, p)
				s.names[newname+"/"+rest] = child
			}
		}
	}
	c.effect(Effect{Kind: Moved, Path: oldname, Path2: newname, ID: in.id})
	return 0
}

// exchange swaps the inodes that a and b name, as renameat2 with
// RENAME_EXCHANGE does: both must exist, and a directory's children move
// with it.
func (s *Server) exchange(c *Call, a, b string) syscall.Errno {
	ina, e := s.lookup(a)
	if e != 0 {
		return e
	}
	inb, e := s.lookup(b)
	if e != 0 {
		return e
	}
	if a == "/" || b == "/" {
		return syscall.EBUSY
	}
	if strings.HasPrefix(b, a+"/") || strings.HasPrefix(a, b+"/") {
		return syscall.EINVAL
	}
	if ina == inb {
		return 0
	}
	children := map[string]*inode{}
	for p, child := range s.names {
		if rest, ok := strings.CutPrefix(p, a+"/"); ok {
			delete(s.names, p)
			children[b+"/"+rest] = child
		} else if rest, ok := strings.CutPrefix(p, b+"/"); ok {
			delete(s.names, p)
			children[a+"/"+rest] = child
		}
	}
	for p, child := range children {
		s.names[p] = child
	}
	s.names[a], s.names[b] = inb, ina
	ina.ctime, inb.ctime = s.stamp(), s.stamp()
	c.effect(Effect{Kind: Moved, Path: a, Path2: b, ID: ina.id})
	c.effect(Effect{Kind: Moved, Path: b, Path2: a, ID: inb.id})
	return 0
}

func (s *Server) remove(c *Call, p string) syscall.Errno {
	in, e := s.lookup(p)
	if e != 0 {
		return e
	}
	if in.mode.IsDir() {
		return syscall.EISDIR
	}
	s.unlinkName(c, p, Unlinked)
	return 0
}

func (s *Server) setTimes(c *Call, in *inode, t time.Time) {
	in.mtime = t.Round(0).UTC()
	in.ctime = s.stamp()
	c.effect(Effect{Kind: Retimed, ID: in.id, Time: in.mtime})
}

// list returns the names in directory dir, sorted.
func (s *Server) list(dir string) []string {
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	var names []string
	for p := range s.names {
		if rest, ok := strings.CutPrefix(p, prefix); ok && rest != "" && !strings.Contains(rest, "/") {
			names = append(names, rest)
		}
	}
	slices.Sort(names)
	return names
}

// MkdirAll makes directory p and its parents.
func (s *Server) MkdirAll(p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p = clean(p)
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		dir := p[:i]
		if in, ok := s.names[dir]; ok {
			if !in.mode.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
			}
			continue
		}
		in := s.newInode(fs.ModeDir|0o755, nil, time.Time{}, 0)
		in.nlink = 2
		s.names[dir] = in
	}
	return nil
}

// WriteFile puts a regular file at p, replacing what is there, for setting
// up a run (a file planted by someone else, a lock left by a crash).
func (s *Server) WriteFile(p string, data []byte, mtime time.Time, uid uint32) error {
	return s.plant(p, 0o644, data, mtime, uid)
}

// Link makes newname another name of oldname, for setting up a run.
func (s *Server) Link(oldname, newname string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldname, newname = clean(oldname), clean(newname)
	if e := s.link(nil, oldname, newname); e != 0 {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: e}
	}
	return nil
}

// Symlink puts a symbolic link to target at p, replacing what is there.
func (s *Server) Symlink(target, p string) error {
	return s.plant(p, fs.ModeSymlink|0o777, []byte(target), time.Time{}, 0)
}

func (s *Server) plant(p string, mode fs.FileMode, data []byte, mtime time.Time, uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p = clean(p)
	if e := s.parent(p); e != 0 {
		return &fs.PathError{Op: "plant", Path: p, Err: e}
	}
	var c Call
	if old, ok := s.names[p]; ok {
		if old.mode.IsDir() {
			return &fs.PathError{Op: "plant", Path: p, Err: syscall.EISDIR}
		}
		s.unlinkName(&c, p, Unlinked)
	}
	in := s.newInode(mode, data, mtime, uid)
	in.nlink = 1
	s.names[p] = in
	return nil
}

// Node is what the server holds for one inode.
type Node struct {
	ID      uint64 // identity for the server's life, never reused
	Ino     uint64 // the inode number, reused once freed
	Mode    fs.FileMode
	Nlink   int
	Data    []byte
	ModTime time.Time
	// ChangeTime is the server's clock at the inode's last change.
	ChangeTime time.Time
	Uid        uint32
}

func (in *inode) node() Node {
	return Node{ID: in.id, Ino: in.ino, Mode: in.mode, Nlink: in.nlink, Data: slices.Clone(in.data), ModTime: in.mtime, ChangeTime: in.ctime, Uid: in.uid}
}

// Lookup returns what the server holds at p, bypassing every cache.
func (s *Server) Lookup(p string) (Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.names[clean(p)]
	if !ok {
		return Node{}, false
	}
	return in.node(), true
}

// Inode returns the inode with identity id, if something still names or
// pins it.
func (s *Server) Inode(id uint64) (Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.live[id]
	if !ok {
		return Node{}, false
	}
	return in.node(), true
}

// List returns the names in directory dir as the server holds them,
// sorted.
func (s *Server) List(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list(clean(dir))
}

// Paths returns every path on the server but "/", sorted.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []string
	for p := range s.names {
		if p != "/" {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}
