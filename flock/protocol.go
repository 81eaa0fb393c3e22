package flock

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
)

// snapshot is one instance of a lock file as read through one descriptor.
type snapshot struct {
	info     fsys.Info
	contents []byte
	ours     bool // the contents are this Lock's claim
}

// inspect reads the file at path: attributes and contents from one open
// descriptor, so that a network filesystem revalidates them. ours is this
// Lock's claim, which l.mu guards.
func (l *Lock) inspect(path, ours string) (snapshot, error) {
	f, err := l.cfg.fs.Open(path)
	if err != nil {
		return snapshot{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return snapshot{}, err
	}
	contents, err := f.ReadAll(claim.MaxContents)
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{info: info, contents: contents, ours: string(bytes.TrimSpace(contents)) == ours}, nil
}

// retryable reports a read error that the user asked to treat as passing.
func (l *Lock) retryable(err error) bool {
	return slices.Contains(l.cfg.retryErrnos, errnoOf(err)) && errnoOf(err) != 0
}

// attempt makes one try at the lock: it writes the claim (with the expiry
// as its times) and links it to the lock path. On contention it reads the
// lock file: if it holds our claim the link did happen (an NFS reply can be
// lost); if it has expired it is broken and the link tried again.
func (l *Lock) attempt() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	if l.held {
		return false, ErrAlreadyLocked
	}
	l.lost = false
	// A few immediate retries cover a lock released or broken under us.
	for range 4 {
		if err := l.writeClaim(); err != nil {
			return false, err
		}
		err := l.cfg.fs.Link(l.claim, l.path)
		if err == nil {
			return l.acquired()
		}
		switch {
		case gone(err):
			// Our claim vanished (swept by a process that thought us dead,
			// or an NFS server's view lagging): write it again.
			l.onDisk = false
			continue
		case !errors.Is(err, fs.ErrExist) && !linkRefused(err):
			return false, err
		}
		s, ierr := l.inspect(l.path, l.claim)
		switch {
		case gone(ierr):
			if linkRefused(err) {
				if ok, err := l.linksWork(); err != nil {
					return false, err
				} else if !ok {
					return false, ErrLinkUnsupported
				}
			}
			continue
		case ierr != nil && l.retryable(ierr):
			l.cfg.logger.Debug("flock: retrying after read error", "path", l.path, "err", ierr)
			return false, nil
		case ierr != nil:
			return false, ierr
		case s.ours:
			return l.acquired()
		case l.breakable(s):
			if _, err := l.breakLocked(s, false); err != nil {
				return false, err
			}
			continue
		default:
			return false, nil
		}
	}
	return false, nil
}

// acquired is called once the lock file is known to be our claim.
func (l *Lock) acquired() (bool, error) {
	l.held = true
	l.expiry = l.cfg.clock.Now().Add(l.lifetime)
	// Set the expiry again, through the lock path, as flufl.lock does after
	// linking. Besides counting the lifetime from now, this makes a
	// network filesystem client drop what it cached for that path: sshfs
	// does not on link, and could report the size of a lock file that
	// stood there before, truncating our own reads of our lock.
	if err := l.cfg.fs.SetTimes(l.path, l.expiry); err != nil {
		l.cfg.logger.Debug("flock: setting the expiry after linking", "path", l.path, "err", err)
	}
	l.token = 0
	if l.cfg.fencing {
		return l.fence()
	}
	return true, nil
}

// breakable reports whether the lock instance s, held by another, may be
// broken: its expiry and the clock slop have passed, or, with
// WithDeadOwnerBreak, its holder was a process of this host that is gone.
func (l *Lock) breakable(s snapshot) bool {
	if l.cfg.clock.Now().After(s.info.ModTime.Add(l.cfg.slop)) {
		return true
	}
	return l.cfg.deadOwnerBreak && l.deadLocal(s)
}

// writeClaim makes sure the claim file exists with our contents and sets
// its times to the expiry, which the lock file shares once linked.
func (l *Lock) writeClaim() error {
	expiry := l.cfg.clock.Now().Add(l.lifetime)
	if l.onDisk {
		err := l.cfg.fs.SetTimes(l.claim, expiry)
		if err == nil {
			return nil
		}
		if !gone(err) {
			return err
		}
		l.onDisk = false
	}
	for range 3 {
		info, err := l.cfg.fs.CreateExclusive(l.claim, []byte(l.claim), expiry)
		if errors.Is(err, fs.ErrExist) {
			if s, ierr := l.inspect(l.claim, l.claim); ierr == nil && s.ours {
				// Ours after all: an earlier create whose reply was lost.
				l.onDisk, l.claimInfo = true, s.info
				return l.cfg.fs.SetTimes(l.claim, expiry)
			}
			// Planted by someone else: never write through it; pick another name.
			l.claim = l.newClaimName()
			continue
		}
		if err != nil {
			return err
		}
		l.onDisk, l.claimInfo = true, info
		return nil
	}
	return &fs.PathError{Op: "create", Path: l.claim, Err: fs.ErrExist}
}

// abandon removes the claim after a failed attempt, so nothing is left
// behind while the Lock is idle.
func (l *Lock) abandon() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		l.removeClaim()
	}
}

func (l *Lock) removeClaim() error {
	if !l.onDisk {
		return nil
	}
	l.onDisk = false
	if err := l.cfg.fs.Remove(l.claim); err != nil && !gone(err) {
		return err
	}
	return nil
}

// lostBecause is ErrLockLost, saying why when the lock path now holds
// something other than a regular file.
func lostBecause(err error) error {
	if errors.Is(err, ErrNotRegular) {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return ErrLockLost
}

// markLost records that the lock is no longer ours, and removes our claim:
// no lock file names it any more.
func (l *Lock) markLost() {
	l.held = false
	l.lost = true
	l.removeClaim()
	l.cfg.logger.Warn("flock: lock lost", "path", l.path)
}

func (l *Lock) releaseLocked() error {
	if l.lost {
		l.lost = false
		l.removeClaim()
		return ErrLockLost
	}
	if !l.held {
		l.removeClaim()
		return ErrNotLocked
	}
	l.held = false
	ours, err := l.removeIf(l.path, func(s snapshot) bool { return s.ours }, l.claimInfo)
	if errors.Is(err, ErrNotRegular) {
		err = lostBecause(err)
	}
	if rerr := l.removeClaim(); err == nil {
		err = rerr
	}
	if err == nil && !ours {
		err = ErrLockLost
	}
	return err
}

func (l *Lock) refreshLocked() error {
	if l.lost {
		return ErrLockLost
	}
	if !l.held {
		return ErrNotLocked
	}
	f, err := l.cfg.fs.Open(l.path)
	if gone(err) || errors.Is(err, ErrNotRegular) {
		l.markLost()
		return lostBecause(err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	contents, err := f.ReadAll(claim.MaxContents)
	if err != nil {
		return err
	}
	if string(bytes.TrimSpace(contents)) != l.claim {
		l.markLost()
		return ErrLockLost
	}
	// Through the descriptor just checked: if the lock was broken and
	// taken since, this touches our orphaned file, never the new holder's.
	return f.SetTimes(l.cfg.clock.Now().Add(l.lifetime))
}

// linksWork tells a filesystem without hard links from a refused link that
// was contention: sshfs answers EPERM both where links are disabled and
// where the lock file appeared between its lookup and the link (and may be
// gone again by the time we look). It links our claim to a fresh name of
// our own, which nothing else can be using.
func (l *Lock) linksWork() (bool, error) {
	probe := l.freshName()
	err := l.cfg.fs.Link(l.claim, probe)
	if err == nil {
		if err := l.cfg.fs.Remove(probe); err != nil && !gone(err) {
			return true, err
		}
		return true, nil
	}
	if linkRefused(err) {
		return false, nil
	}
	return false, err
}

// freshName returns an unused name of our own beside the lock file, shaped
// like one of our claims so that a sweep after a crash removes it.
func (l *Lock) freshName() string {
	return filepath.Join(l.dir, filepath.Base(l.newClaimName()))
}

// recheck reads the lock instance s again through a new name, a hard link
// of our own: network filesystems cache attributes by path (sshfs for up to
// 20 s, even the expiry of an earlier file at that path), and a new path
// has nothing cached. It returns what the new name shows and whether that
// is still the same holder's lock and still breakable (or force is set).
// Where the link cannot be made, s is all there is to go by.
func (l *Lock) recheck(s snapshot, force bool) (snapshot, bool) {
	probe := l.freshName()
	if err := l.cfg.fs.Link(l.path, probe); err != nil {
		return s, !gone(err)
	}
	fresh, err := l.inspect(probe, l.claim)
	if rerr := l.cfg.fs.Remove(probe); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing probe link", "path", probe, "err", rerr)
	}
	if err != nil || !bytes.Equal(fresh.contents, s.contents) {
		return s, false
	}
	// A filesystem that counts the probe link has real inode numbers: a
	// different one means the lock file was replaced since s was read.
	// Others (sshfs) number files by path, so the probe's number says
	// nothing; the rename aside keeps the lock path's number, so that is
	// the one to compare against.
	if fresh.info.Nlink >= 2 && !fresh.info.SameFile(s.info) {
		return s, false
	}
	fresh.info.Ino, fresh.info.Dev = s.info.Ino, s.info.Dev
	return fresh, force || l.breakable(fresh)
}

// breakLocked removes the lock instance s, which was judged expired (or is
// to be broken by force), and the claim it names. It reports whether it
// removed s; false if the lock file changed meanwhile. Called with l.mu
// held.
func (l *Lock) breakLocked(s snapshot, force bool) (bool, error) {
	held, err := l.lockBreakers()
	if err != nil || !held {
		return false, err
	}
	defer l.unlockBreakers()
	s, ok := l.recheck(s, force)
	if !ok {
		return false, nil
	}
	broke, err := l.removeIf(l.path, sameInstance(s), fsys.Info{})
	if err != nil || !broke {
		return false, err
	}
	l.cfg.logger.Debug("flock: broke expired lock", "path", l.path, "expired", s.info.ModTime, "holder", string(bytes.TrimSpace(s.contents)))
	if name, ok := claim.Removable(s.contents, l.base, l.cfg.sep); ok {
		if err := l.cfg.fs.Remove(filepath.Join(l.dir, name)); err != nil && !gone(err) {
			l.cfg.logger.Debug("flock: removing broken lock's claim", "err", err)
		}
	}
	l.sweepLocked()
	return true, nil
}

// sameInstance returns a match for removeIf that accepts only the file
// instance s: the same contents, the same expiry and, where both reads
// report one, the same inode.
func sameInstance(s snapshot) func(snapshot) bool {
	return func(moved snapshot) bool {
		if !bytes.Equal(moved.contents, s.contents) || !moved.info.ModTime.Equal(s.info.ModTime) {
			return false
		}
		if moved.info.Ino != 0 && s.info.Ino != 0 {
			return moved.info.SameFile(s.info)
		}
		return true
	}
}

// breakersPath is the breakers' lock: a second lock file beside the lock,
// which a process holds while it breaks the lock, so that two never break
// at once. Without it, a breaker that judged an instance expired could move
// aside the fresh lock that a faster breaker had taken meanwhile, and
// another process could take the lock before the fresh one was put back.
// Python's flufl.lock does not know it; its own breaker race remains.
func (l *Lock) breakersPath() string { return l.path + l.cfg.sep + "break" }

// lockBreakers takes the breakers' lock by linking our claim to it, as the
// lock itself is taken; its expiry is our claim's. One that has expired
// (its breaker died or stalled) is broken, safely, like a lock. It reports
// false and nil when another process is breaking the lock right now.
func (l *Lock) lockBreakers() (bool, error) {
	path := l.breakersPath()
	for range 3 {
		err := l.cfg.fs.Link(l.claim, path)
		if err == nil {
			return true, nil
		}
		if gone(err) {
			return false, nil // our claim vanished; the next attempt writes it again
		}
		if !errors.Is(err, fs.ErrExist) && !linkRefused(err) {
			return false, err
		}
		s, ierr := l.inspect(path, l.claim)
		switch {
		case gone(ierr):
			continue
		case ierr != nil:
			return false, ierr
		case s.ours:
			return true, nil // a lost reply
		case l.cfg.clock.Now().After(s.info.ModTime.Add(l.cfg.slop)) || l.deadLocal(s):
			if _, err := l.removeIf(path, sameInstance(s), fsys.Info{}); err != nil {
				return false, err
			}
		default:
			return false, nil
		}
	}
	return false, nil
}

// unlockBreakers removes the breakers' lock if it is still ours.
func (l *Lock) unlockBreakers() {
	if _, err := l.removeIf(l.breakersPath(), func(s snapshot) bool { return s.ours }, l.claimInfo); err != nil {
		l.cfg.logger.Warn("flock: removing the breakers' lock", "path", l.breakersPath(), "err", err)
	}
}

// deadLocal reports whether the file s names a claim of this host whose
// process no longer runs.
func (l *Lock) deadLocal(s snapshot) bool {
	d, ok := claim.Parse(s.contents, l.cfg.sep)
	return ok && d.Hostname == l.cfg.hostname && d.PID != l.pid && !l.cfg.fs.ProcessAlive(d.PID)
}

// removeIf removes the file at path (the lock file, or the breakers'
// lock) if match approves of what it holds. To remove only the instance
// that match saw, never one that replaced it meanwhile, it first moves the
// file aside under a name of its own, reads what it moved, and links it
// back if match refuses it. If what it moved is the very file known as
// same (our claim, where the filesystem reports inode numbers), that is a
// match without reading it. It reports whether it removed the file; false
// and nil when there was none or it was put back.
func (l *Lock) removeIf(path string, match func(snapshot) bool, same fsys.Info) (bool, error) {
	aside := l.freshName()
	if err := l.cfg.fs.Rename(path, aside); err != nil {
		if gone(err) {
			return false, nil
		}
		return false, err
	}
	if same.Ino != 0 {
		if i, err := l.cfg.fs.Lstat(aside); err == nil && i.Mode.IsRegular() && i.SameFile(same) {
			if err := l.cfg.fs.Remove(aside); err != nil && !gone(err) {
				return true, err
			}
			return true, nil
		}
	}
	moved, err := l.inspect(aside, l.claim)
	if gone(err) {
		return false, nil
	}
	if err == nil && match(moved) {
		if err := l.cfg.fs.Remove(aside); err != nil && !gone(err) {
			return true, err
		}
		return true, nil
	}
	// Not what we meant to remove (or unreadable, which we cannot judge):
	// put it back without replacing any lock file taken since.
	lerr := l.cfg.fs.Link(aside, path)
	if lerr != nil && errors.Is(err, ErrNotRegular) {
		// A directory cannot be linked back; renaming it back cannot
		// replace a lock file taken since, as rename refuses to put a
		// directory over a file.
		if rerr := l.cfg.fs.Rename(aside, path); rerr == nil {
			return false, err
		}
	}
	if lerr != nil {
		l.cfg.logger.Warn("flock: could not restore a lock file moved aside; its holder will find the lock lost", "path", path, "err", lerr)
	}
	if rerr := l.cfg.fs.Remove(aside); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing moved-aside lock file", "path", aside, "err", rerr)
	}
	return false, err
}

// sweepEvery spaces the sweeps that follow a wait: each reads the whole
// directory, which may be large and shared.
const sweepEvery = time.Minute

// swept records, per lock path, when this process last swept for it. It is
// kept per process rather than per Lock, since callers such as guard make a
// new Lock for every acquisition.
var swept struct {
	sync.Mutex
	at map[string]time.Time
}

// sweepDue reports whether an acquisition should be followed by a sweep:
// the first time this process takes the lock, so that what crashed
// processes left is cleared even where nobody waits any more, and after a
// wait at most once every sweepEvery. It counts in real time, whatever the
// Lock's clock, as it only spaces out work.
func (l *Lock) sweepDue(waited bool) bool {
	swept.Lock()
	defer swept.Unlock()
	last, ok := swept.at[l.path]
	if ok && (!waited || time.Since(last) < sweepEvery) {
		return false
	}
	if swept.at == nil {
		swept.at = map[string]time.Time{}
	}
	swept.at[l.path] = time.Now()
	return true
}

// sweep removes claim files left by crashed processes of this host after
// an acquisition, if one is due.
func (l *Lock) sweep(waited bool) {
	if !l.sweepDue(waited) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked()
}

// sweepLocked removes claims of this lock whose hostname is ours, whose
// pid is not running here, and which the lock file does not name. Claims of
// other hosts are left alone: we cannot tell whether their owners live, and
// a flufl.lock waiter whose claim vanishes waits until its timeout.
func (l *Lock) sweepLocked() {
	if s, err := l.inspect(l.breakersPath(), l.claim); err == nil && l.deadLocal(s) {
		l.removeIf(l.breakersPath(), sameInstance(s), fsys.Info{})
	}
	names, err := l.cfg.fs.ReadDir(l.dir)
	if err != nil {
		l.cfg.logger.Debug("flock: sweep", "dir", l.dir, "err", err)
		return
	}
	var current string
	if s, err := l.inspect(l.path, l.claim); err == nil {
		current, _ = claim.Removable(s.contents, l.base, l.cfg.sep)
	}
	own := filepath.Base(l.claim)
	for _, name := range names {
		if name == current || name == own || !claim.IsClaimOf(name, l.base, l.cfg.sep) {
			continue
		}
		d, _ := claim.Parse([]byte(name), l.cfg.sep)
		if d.Hostname != l.cfg.hostname || d.PID == l.pid || l.cfg.fs.ProcessAlive(d.PID) {
			continue
		}
		if err := l.cfg.fs.Remove(filepath.Join(l.dir, name)); err == nil {
			l.cfg.logger.Debug("flock: swept stale claim", "claim", name)
		}
	}
}

func notRegular(m fs.FileMode) error {
	return &fsys.NotRegularError{Kind: fsys.Kind(m)}
}
