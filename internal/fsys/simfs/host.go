package simfs

import (
	"fmt"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Cache says which client caching rules a Host follows.
type Cache int

const (
	// CacheNone is a local disk: every call sees the server as it is.
	CacheNone Cache = iota
	// CacheNFS keeps attributes per inode for a while; opening a file
	// revalidates them (close-to-open consistency), Lstat and later Stats
	// of an open file may answer from the cache.
	CacheNFS
	// CacheSSHFS keeps attributes per path, even across opens and for a
	// descriptor's Stat, and may report those of a file that has since been
	// replaced or removed. Inode numbers are handed out per path.
	CacheSSHFS
)

func (c Cache) String() string {
	switch c {
	case CacheNone:
		return "local"
	case CacheNFS:
		return "nfs"
	case CacheSSHFS:
		return "sshfs"
	}
	return fmt.Sprintf("Cache(%d)", int(c))
}

// HostConfig is what a simulated host's mount does. Each field is one
// behaviour that breaks lock files in the field, and can be switched alone.
type HostConfig struct {
	// Skew is added to the true time to give the host's wall clock.
	Skew time.Duration
	// Cache chooses the attribute caching rules.
	Cache Cache
	// AttrMin and AttrMax bound how long fetched attributes stay cached
	// (NFS acregmin/acregmax; sshfs's cache timeout). Each fetch draws its
	// own lifetime between them.
	AttrMin, AttrMax time.Duration
	// DirMax bounds how long a directory listing stays cached; 0 caches
	// none. The host's own changes to a directory drop its listing.
	DirMax time.Duration
	// Resolution is the granularity of file times as set and reported
	// through this mount: 0 for nanoseconds, time.Second for sshfs.
	Resolution time.Duration
	// CtimeCopy reports the modification time as the change time, as
	// sshfs does (SFTP carries no change time), rather than the server's
	// stamp.
	CtimeCopy bool
	// ClientStamps makes the mount report change times and stamp writes
	// without explicit times with the host's clock rather than the
	// server's: a filesystem whose change time is not the server's.
	ClientStamps bool
	// NoHardLinks makes link fail with EPERM (sshfs -o disable_hardlink).
	NoHardLinks bool
	// LinkRaceEPERM is the probability that a link onto an existing name
	// fails with EPERM rather than EEXIST (sshfs, when the name appeared
	// between its lookup and the link).
	LinkRaceEPERM float64
	// NlinkOne reports a link count of 1 for every file (sshfs, SMB).
	NlinkOne bool
	// PathInodes numbers files per path, as sshfs without -o use_ino does:
	// a rename keeps the number, a new name (a hard link) gets a new one.
	PathInodes bool
	// StaleHandles makes calls on a descriptor whose file has been
	// removed from the server fail with ESTALE, as on NFS. Otherwise an
	// open descriptor keeps the file alive and usable, as on a local disk,
	// and keeps its inode number from being reused.
	StaleHandles bool
	// NoRenameNoReplace makes RenameNoReplace fail with
	// errors.ErrUnsupported, as it does on NFS and FUSE.
	NoRenameNoReplace bool
	// LostReplies is the probability that the reply to a create, link,
	// rename or remove that succeeded is lost: the client retransmits and
	// reports what the retransmission got (EEXIST, ENOENT).
	LostReplies float64
	// SetTimesByPath makes a time change through a descriptor whose file
	// has been removed act on whatever file now has the path it was
	// opened by, as sshfs's does (it sends SFTP SETSTAT by path).
	SetTimesByPath bool
	// StaleAfterSet is the probability that a time change, or a create
	// with times, leaves the attributes from before it cached for the
	// path on a CacheSSHFS mount, as sshfs does when a listing of the
	// directory fetched them before the change and cached them after the
	// change dropped what was cached: a descriptor's Stat right after the
	// change then shows the old times.
	StaleAfterSet float64
	// UID owns the files this host creates.
	UID uint32
	// Dev is the device number the mount reports.
	Dev uint64
	// ReusePIDs hands out the lowest free pid in a namespace, so that a
	// dead process's pid comes back at once; otherwise pids only grow.
	ReusePIDs bool
	// NoNamespace makes Namespace report 0: where this host runs cannot
	// be told.
	NoNamespace bool
}

// Local returns the configuration of a local disk (ext4): no caches, real
// link counts and inode numbers, nanosecond times, RenameNoReplace.
func Local() HostConfig {
	return HostConfig{Cache: CacheNone, UID: 1000, Dev: 0x801}
}

// NFS returns the configuration of an NFS mount with Linux's default
// attribute cache bounds (acregmin 3 s, acregmax 60 s), ESTALE on removed
// files and no RenameNoReplace.
func NFS() HostConfig {
	return HostConfig{
		Cache:             CacheNFS,
		AttrMin:           3 * time.Second,
		AttrMax:           60 * time.Second,
		DirMax:            30 * time.Second,
		StaleHandles:      true,
		NoRenameNoReplace: true,
		UID:               1000,
		Dev:               0x2a,
	}
}

// SSHFS returns the configuration of an sshfs mount as measured here:
// attributes cached per path for up to 20 s, inode numbers per path, a
// link count of 1, 1 s times, EPERM for some links onto existing names,
// and no RenameNoReplace.
func SSHFS() HostConfig {
	return HostConfig{
		Cache:             CacheSSHFS,
		AttrMin:           time.Second,
		AttrMax:           20 * time.Second,
		DirMax:            20 * time.Second,
		Resolution:        time.Second,
		CtimeCopy:         true,
		LinkRaceEPERM:     0.3,
		NlinkOne:          true,
		PathInodes:        true,
		NoRenameNoReplace: true,
		SetTimesByPath:    true,
		UID:               1000,
		Dev:               0x2b,
	}
}

// Host is one simulated machine's view of the server: its clock, its mount
// and the caches the mount keeps, shared by all its processes.
type Host struct {
	s     *Server
	index int
	cfg   HostConfig

	attrs     map[uint64]cached // CacheNFS: by inode id
	pathAttrs map[string]cached // CacheSSHFS: by path
	nodes     map[string]uint64 // PathInodes: path → number
	nextNode  uint64
	dirs      map[string]cachedDir
	spaces    []*Namespace
}

type cached struct {
	info  fsys.Info
	id    uint64 // the inode the attributes were read from
	until time.Time
}

type cachedDir struct {
	names []string
	until time.Time
}

// NewHost adds a host that sees the server through a mount configured by
// cfg.
func (s *Server) NewHost(cfg HostConfig) *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &Host{
		s:         s,
		index:     len(s.hosts),
		cfg:       cfg,
		attrs:     map[uint64]cached{},
		pathAttrs: map[string]cached{},
		nodes:     map[string]uint64{},
		nextNode:  2,
		dirs:      map[string]cachedDir{},
	}
	s.hosts = append(s.hosts, h)
	return h
}

// Config returns the host's configuration.
func (h *Host) Config() HostConfig { return h.cfg }

// Now returns the host's wall clock: the true time plus its skew.
func (h *Host) Now() time.Time { return h.s.now().Add(h.cfg.Skew) }

// Namespace is a pid namespace of a host: its processes see each other's
// pids. Hosts start with none; the first one asked for is the host's own.
type Namespace struct {
	h     *Host
	index int
	alive map[int]bool
	last  int
}

// firstPID is the lowest pid handed out, as if the system's own processes
// had taken those below.
const firstPID = 100

// Namespace returns the host's i-th pid namespace, making it (and those
// before it) if need be.
func (h *Host) Namespace(i int) *Namespace {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for len(h.spaces) <= i {
		h.spaces = append(h.spaces, &Namespace{h: h, index: len(h.spaces), alive: map[int]bool{}, last: firstPID - 1})
	}
	return h.spaces[i]
}

// Tag is what Namespace reports to the namespace's processes: distinct
// for every host and namespace of the server, nonzero, and small.
func (n *Namespace) Tag() uint64 {
	if n.h.cfg.NoNamespace {
		return 0
	}
	return uint64(n.h.index)*1000 + uint64(n.index) + 1
}

// Spawn starts a process in the namespace and returns its view of the
// filesystem. Its calls go through step, or happen at once if step is nil.
func (n *Namespace) Spawn(step Stepper) *Proc {
	n.h.s.mu.Lock()
	defer n.h.s.mu.Unlock()
	pid := n.last + 1
	if n.h.cfg.ReusePIDs {
		pid = firstPID
		for n.alive[pid] {
			pid++
		}
	}
	n.last = max(n.last, pid)
	n.alive[pid] = true
	return &Proc{h: n.h, ns: n, pid: pid, step: step}
}

// SpawnUnused is Spawn with a pid that no process of the namespace has
// had, even where pids are reused.
func (n *Namespace) SpawnUnused(step Stepper) *Proc {
	n.h.s.mu.Lock()
	defer n.h.s.mu.Unlock()
	n.last++
	n.alive[n.last] = true
	return &Proc{h: n.h, ns: n, pid: n.last, step: step}
}

// ttl draws how long an entry fetched now stays cached.
func (h *Host) ttl(lo, hi time.Duration) time.Time {
	d := lo
	if hi > lo {
		d += time.Duration(h.s.rng.Int64N(int64(hi - lo + 1)))
	}
	return h.s.now().Add(d)
}

// node returns the path's inode number on a PathInodes mount.
func (h *Host) node(p string) uint64 {
	n, ok := h.nodes[p]
	if !ok {
		n = h.nextNode
		h.nextNode++
		h.nodes[p] = n
	}
	return n
}

// fresh returns the attributes of in, found at p, as this mount reports
// them, without any cache.
func (h *Host) fresh(in *inode, p string) fsys.Info {
	info := fsys.Info{
		Mode:       in.mode,
		Size:       int64(len(in.data)),
		ModTime:    h.trunc(in.mtime),
		ChangeTime: h.trunc(in.ctime),
		Dev:        h.cfg.Dev,
		Ino:        in.ino,
		Nlink:      uint64(in.nlink),
		Uid:        in.uid,
	}
	if in.mode.IsDir() {
		info.Size = 4096
	}
	if h.cfg.ClientStamps {
		info.ChangeTime = h.trunc(in.ctime.Add(h.cfg.Skew))
	}
	if h.cfg.CtimeCopy {
		info.ChangeTime = info.ModTime
	}
	if h.cfg.NlinkOne {
		info.Nlink = 1
	}
	if h.cfg.PathInodes {
		info.Ino = h.node(p)
	}
	return info
}

func (h *Host) trunc(t time.Time) time.Time {
	if h.cfg.Resolution > 0 {
		return t.Truncate(h.cfg.Resolution)
	}
	return t
}

// attrsOf returns the attributes of in at p, from the cache if it still
// holds some (revalidate skips the cache, as an NFS open does), and
// caches what it fetches.
func (h *Host) attrsOf(in *inode, p string, revalidate bool) fsys.Info {
	now := h.s.now()
	switch h.cfg.Cache {
	case CacheNFS:
		if c, ok := h.attrs[in.id]; ok && !revalidate && now.Before(c.until) {
			return c.info
		}
		info := h.fresh(in, p)
		h.attrs[in.id] = cached{info: info, id: in.id, until: h.ttl(h.cfg.AttrMin, h.cfg.AttrMax)}
		return info
	case CacheSSHFS:
		if c, ok := h.pathAttrs[p]; ok && now.Before(c.until) {
			return c.info
		}
		info := h.fresh(in, p)
		h.pathAttrs[p] = cached{info: info, id: in.id, until: h.ttl(h.cfg.AttrMin, h.cfg.AttrMax)}
		return info
	}
	return h.fresh(in, p)
}

// changed records that this host changed in (found at p): its own calls
// come back with fresh attributes on NFS, and make sshfs drop what it
// cached for the path.
func (h *Host) changed(in *inode, p string) {
	switch h.cfg.Cache {
	case CacheNFS:
		if in.nlink == 0 {
			delete(h.attrs, in.id)
			return
		}
		h.attrs[in.id] = cached{info: h.fresh(in, p), id: in.id, until: h.ttl(h.cfg.AttrMin, h.cfg.AttrMax)}
	case CacheSSHFS:
		delete(h.pathAttrs, p)
	}
}

// maybeStale caches before, the attributes of in at p from before a time
// change, for p, with the probability StaleAfterSet on a CacheSSHFS mount,
// and reports whether it did.
func (h *Host) maybeStale(in *inode, p string, before fsys.Info) bool {
	if h.cfg.Cache != CacheSSHFS || h.cfg.StaleAfterSet == 0 || h.s.rng.Float64() >= h.cfg.StaleAfterSet {
		return false
	}
	h.pathAttrs[p] = cached{info: before, id: in.id, until: h.ttl(h.cfg.AttrMin, h.cfg.AttrMax)}
	return true
}

// dirChanged drops the cached listing of the directory holding p.
func (h *Host) dirChanged(p string) {
	delete(h.dirs, dirOf(p))
}

// moved follows a rename made by this host in its per-path tables.
func (h *Host) moved(oldname, newname string) {
	delete(h.pathAttrs, oldname)
	delete(h.pathAttrs, newname)
	if n, ok := h.nodes[oldname]; ok {
		delete(h.nodes, oldname)
		h.nodes[newname] = n
	} else {
		delete(h.nodes, newname)
	}
}

// exchanged follows an exchange of a and b made by this host in its
// per-path tables.
func (h *Host) exchanged(a, b string) {
	delete(h.pathAttrs, a)
	delete(h.pathAttrs, b)
	na, oka := h.nodes[a]
	nb, okb := h.nodes[b]
	delete(h.nodes, a)
	delete(h.nodes, b)
	if oka {
		h.nodes[b] = na
	}
	if okb {
		h.nodes[a] = nb
	}
}

// unlinked drops a removed name from the per-path tables.
func (h *Host) unlinked(p string) {
	delete(h.pathAttrs, p)
	delete(h.nodes, p)
}

func (h *Host) readDir(dir string) []string {
	if h.cfg.DirMax <= 0 {
		return h.s.list(dir)
	}
	now := h.s.now()
	if c, ok := h.dirs[dir]; ok && now.Before(c.until) {
		return c.names
	}
	names := h.s.list(dir)
	h.dirs[dir] = cachedDir{names: names, until: h.ttl(0, h.cfg.DirMax)}
	return names
}
