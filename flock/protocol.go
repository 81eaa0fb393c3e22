package flock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/retry"
)

// The protocol follows one rule: look before you touch. Nothing at the
// lock path is changed, moved or removed unless this call has just seen
// that the file there is the one it means (its own claim, or the very
// instance it judged expired), and times are only ever set through a
// descriptor of the Lock's own claim, so they can never land on another
// holder's lock file. doc.go describes the protocol as a whole.

// claimFile is one acquisition's claim: created exclusively under a fresh
// random name and kept open while the Lock seeks or holds the lock. The
// open descriptor pins the inode, so that while the Lock may still compare
// a file against info, no other file can be given the same inode number.
type claimFile struct {
	name   string        // the claim's path, which is also its contents
	swap   bool          // a breakers' lock to swap in (newSwapClaim): its contents say so too
	life   time.Duration // the lease it was created with
	f      fsys.File
	info   fsys.Info // as created
	expiry time.Time // the expiry it was created with, before the filesystem stored it
	// stamp is the modification time its descriptor last reported after
	// its times were set (zero if that stat failed): a quick look (see
	// quickMine) expects to find it.
	stamp time.Time
	// timed is the clocks' reading just before it was created with its
	// expiry, or given it: a breakers' lock's lease ends breakTTL after it
	// (breakLeaseOver), whatever the wall clock does since. Others count
	// from a sighting of the file, which comes later still.
	timed reading

	// pub is the lock file this claim published by creating it (see
	// publishCreate), kept open for the same reasons as f; nil where the
	// lock file is the claim itself (linked, or moved into place).
	pub     fsys.File
	pubInfo fsys.Info // as created
}

// contents returns what the claim's file holds: its name, followed by
// swapMark for a breakers' lock to swap in.
func (c *claimFile) contents() string {
	if c.swap {
		return c.name + swapMark
	}
	return c.name
}

// swappedIn reports whether s is a breakers' lock that removeBreakers
// swapped in for another's.
func swappedIn(s snapshot) bool {
	return bytes.HasSuffix(bytes.TrimSpace(s.contents), []byte(swapMark))
}

// swapMark ends the contents of a breakers' lock that removeBreakers swaps
// in for another's. They are no claim that anyone can parse, so that no
// proof of its maker's death lets anyone break it: that proves nothing of
// the breaker whose file it may have taken out, which may still be at work
// until the breakers' lease it began before the swap ends, and which this
// file's expiry and the slop outlast (the adversarial review of
// removeBreakers: a remover killed just after its swap, and a Lock
// WithDeadOwnerBreak, broke the breakers' lock under a live breaker).
const swapMark = "\nswapped in for a breakers' lock judged broken"

// file returns the file that this claim's lock file is, once published:
// the descriptor through which its times are set, and its identity.
func (c *claimFile) file() (fsys.File, fsys.Info) {
	if c.pub != nil {
		return c.pub, c.pubInfo
	}
	return c.f, c.info
}

// close closes the claim's descriptors.
func (c *claimFile) close() {
	if c.f != nil {
		c.f.Close()
	}
	if c.pub != nil {
		c.pub.Close()
	}
}

// publishing is how a Lock puts its claim at the lock path, failing if
// a file is there: by a hard link (flufl.lock's way, and the default),
// or, where the filesystem has no hard links, by one of the two portable
// ways (doc.go, Primitives).
type publishing int

const (
	publishLink   publishing = iota // link(2) the claim to the lock path
	publishMove                     // rename the claim to the lock path without replacing
	publishCreate                   // create the lock file exclusively, with the claim's contents
)

// identity says whether the filesystem under the lock reports file
// identity (device and inode numbers that stay with a file across its
// names), which the Lock learns from its first claim.
type identity int

const (
	identityUnknown identity = iota
	identityYes              // local filesystems, NFS
	identityNo               // sshfs, SMB, systems without inode numbers
)

// snapshot is one instance of a lock file as read through one descriptor.
type snapshot struct {
	info     fsys.Info
	contents []byte
}

// names reports whether the snapshot's contents are the claim name c.
func (s snapshot) names(c string) bool {
	return c != "" && string(bytes.TrimSpace(s.contents)) == c
}

// inspect reads the file at path: attributes and contents from one open
// descriptor, so that a network filesystem revalidates them.
func (l *Lock) inspect(path string) (snapshot, error) {
	f, err := l.cfg.fs.Open(path)
	if err != nil {
		return snapshot{}, err
	}
	defer f.Close()
	return read(f)
}

func read(f fsys.File) (snapshot, error) {
	info, err := f.Stat()
	if err != nil {
		return snapshot{}, err
	}
	contents, err := f.ReadAll(claim.MaxContents)
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{info: info, contents: contents}, nil
}

// retryable reports a read error that the user asked to treat as passing.
func (l *Lock) retryable(err error) bool {
	return slices.Contains(l.cfg.retryErrnos, errnoOf(err)) && errnoOf(err) != 0
}

// now is the wall clock, without Go's monotonic reading: expiries are
// compared with file times, and the monotonic clock stops while a machine
// sleeps.
func (l *Lock) now() time.Time { return l.cfg.clock.Now().Round(0) }

// newClaim creates a claim file under a fresh random name whose times are
// the expiry of a lease of life from now. A name found taken is never
// adopted, whatever it holds: nobody can guess the name, so it is almost
// surely our own create whose reply was lost, and it is removed; were it
// planted, it stood among our names.
func (l *Lock) newClaim(life time.Duration) (*claimFile, error) {
	return l.newClaimFile(life, false)
}

// newSwapClaim is newClaim for a breakers' lock that removeBreakers swaps
// in: its contents end with swapMark, and its lease is swapTTL.
func (l *Lock) newSwapClaim() (*claimFile, error) {
	return l.newClaimFile(swapTTL, !mutated("dead-swapper-breakable"))
}

// swapTTL is the lease of a breakers' lock that removeBreakers swaps in,
// within which it swaps: milliseconds of work. Others may break it once
// it has expired and the slop (at least breakTTL) has passed, which
// outlasts the lease of any breaker whose file it took out, since that
// breaker took the breakers' lock before the swap, within this lease. A
// lease as short keeps such a file, left in place to stand in for a live
// breaker's, from blocking others for longer than it must.
const swapTTL = time.Second

func (l *Lock) newClaimFile(life time.Duration, swap bool) (*claimFile, error) {
	var err error
	// Lost replies can make a few creates in a row look refused.
	for range 8 {
		name := l.newClaimName()
		// Where the time base needs it, the claim is written without
		// explicit times first, so that its stamp tells the filesystem's
		// time, and only then given its expiry (timebase.go).
		stamp := l.writeStampNeeded()
		var expiry time.Time
		if !stamp {
			expiry = l.expiryIn(life)
		}
		before := l.read()
		c := &claimFile{name: name, swap: swap, life: life}
		var f fsys.File
		f, err = l.cfg.fs.Create(name, []byte(c.contents()), expiry)
		if errors.Is(err, fs.ErrExist) {
			if rerr := l.cfg.fs.Remove(name); rerr != nil && !gone(rerr) {
				l.cfg.logger.Warn("flock: removing a file at a fresh claim name", "path", name, "err", rerr)
			}
			continue
		}
		if err != nil {
			if stamp {
				// Created without times, a claim that failed later is
				// left in place by Create: the name is ours alone.
				l.cfg.fs.Remove(name)
			}
			return nil, err
		}
		info, err := f.Stat()
		if err == nil && stamp {
			l.observeWrite(before, info)
			before = l.read()
			expiry = l.expiryIn(life)
			if err = f.SetTimes(expiry); err == nil {
				info, err = f.Stat()
			}
		}
		if err == nil {
			info, err = l.confirmTimes(f, expiry, info, time.Time{}, true)
		}
		if err != nil {
			f.Close()
			l.cfg.fs.Remove(name)
			return nil, err
		}
		if !expiry.IsZero() {
			l.observeTimes(before, info, expiry)
		}
		l.learnDirect(info)
		switch {
		case info.Ino == 0:
			l.ident = identityNo
		case l.publish == publishCreate:
			// Where lock files are created (NFS, FUSE), inode numbers
			// may be the client's, by path (sshfs): contents decide.
			l.ident = identityNo
		case l.publish == publishMove && l.ident == identityUnknown:
			// No links to learn from: a lock file moved into place is
			// the file we created, and is judged by its identity.
			l.ident = identityYes
		}
		c.f, c.info, c.expiry, c.stamp, c.timed = f, info, expiry, info.ModTime, before
		return c, nil
	}
	return nil, err
}

// dropClaim removes the claim file, if the file at its name is still the
// one this Lock created, and closes it.
func (l *Lock) dropClaim() error {
	c := l.claim
	if c == nil {
		return nil
	}
	l.claim = nil
	err := l.removeOwn(c)
	c.close()
	return err
}

// removeOwn removes the claim-shaped file c.name if it is still c: a
// breaker may have removed it, and then anything may stand there.
func (l *Lock) removeOwn(c *claimFile) error {
	if l.ident != identityNo {
		i, err := l.cfg.fs.Lstat(c.name)
		if gone(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !i.SameFile(c.info) {
			return nil
		}
	}
	if err := l.cfg.fs.Remove(c.name); err != nil && !gone(err) {
		return err
	}
	return nil
}

// dropOwn removes c's name if it is still c's (removeOwn), and closes c:
// for a claim file of ours that holds nothing, or no longer does.
func (l *Lock) dropOwn(c *claimFile) {
	l.removeOwn(c)
	c.close()
}

// mine reports whether s, read at the lock path (or where this Lock moved
// the lock file), is the lock file of this Lock's claim; see isFileOf.
func (l *Lock) mine(s snapshot) (bool, error) {
	return l.isFileOf(s, l.claim)
}

// isFileOf reports whether s is the file c: it names the claim and, where
// the filesystem reports identity, it is the claim's very file. Contents
// alone would let anyone who can write a file in the directory forge a
// lock file that names a waiter's claim.
func (l *Lock) isFileOf(s snapshot, c *claimFile) (bool, error) {
	if c == nil || !s.names(c.contents()) || l.publish == publishCreate && c.pub == nil {
		return false, nil // a created lock file is ours only if we hold it open
	}
	if _, info := c.file(); s.info.SameFile(info) {
		l.ident = identityYes
		return true, nil
	}
	if l.ident == identityUnknown && l.publish == publishLink {
		err := l.learnIdentity(c)
		if claimLost(err) {
			return false, nil // c is gone or replaced: s is not c
		}
		if err != nil {
			return false, err
		}
	}
	return l.ident == identityNo, nil
}

// learnIdentity finds out whether the filesystem keeps a file's identity
// across its names, by linking the claim c to a fresh name of our own and
// comparing the two. sshfs numbers files by name; a file there that
// names our claim is taken to be ours (README says what that allows).
func (l *Lock) learnIdentity(c *claimFile) error {
	probe := l.freshName()
	err := l.cfg.fs.Link(c.name, probe)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist): // ours: a fresh name, so EEXIST is a lost reply
	case linkRefused(err):
		return ErrLinkUnsupported
	default:
		return err
	}
	pi, err := l.cfg.fs.Lstat(probe)
	if rerr := l.cfg.fs.Remove(probe); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing probe link", "path", probe, "err", rerr)
	}
	if err != nil {
		return err
	}
	if pi.SameFile(c.info) {
		l.ident = identityYes
		return nil
	}
	// Not our file: sshfs numbering names, or our claim's name replaced
	// (in a directory where others may remove files). Two names of one
	// file tell which.
	ci, err := l.cfg.fs.Lstat(c.name)
	if err != nil {
		return err
	}
	if pi.Ino != 0 && pi.SameFile(ci) {
		l.ident = identityYes
		return errClaimReplaced
	}
	l.ident = identityNo
	return nil
}

// errClaimReplaced says that the name of our claim no longer names the
// file we created: someone removed it and put another file there.
var errClaimReplaced = errors.New("flock: the claim's name was given to another file")

// claimLost reports an error that says our claim is not at its name any
// more: the claim, and whatever was linked from it, is not ours.
func claimLost(err error) bool { return gone(err) || errors.Is(err, errClaimReplaced) }

// claimIntact reports whether c's name still names c, where the
// filesystem can tell.
func (l *Lock) claimIntact(c *claimFile) bool {
	if c.info.Ino == 0 || l.ident == identityNo {
		return true
	}
	i, err := l.cfg.fs.Lstat(c.name)
	return err == nil && i.SameFile(c.info)
}

// attempt makes one try at the lock: it links the claim (created now, or
// re-timed to the expiry) to the lock path. On contention it reads the
// lock file: if it is our claim the link did happen (an NFS reply can be
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
	l.waiting = nil
	// A few immediate retries cover a lock released or broken under us.
	for range 4 {
		if err := l.readyClaim(); err != nil {
			return false, err
		}
		err := l.publishClaim(l.claim, l.path, l.claimExpiry)
		if err == nil && l.publish == publishLink {
			return l.linked()
		}
		if err == nil {
			return l.acquired()
		}
		switch {
		case errors.Is(err, errSlowCreate):
			// The lock file we created cannot be trusted: it expires,
			// and the next attempt, after the backoff, starts afresh.
			l.dropClaim()
			return false, nil
		case gone(err):
			// Our claim vanished (an NFS server's view lagging, or
			// removed by someone else): make a new one.
			l.dropClaim()
			continue
		case !errors.Is(err, fs.ErrExist) && !l.refusedAsTaken(err):
			return false, err
		}
		if l.heldQuick() {
			return false, nil
		}
		s, ierr := l.inspect(l.path)
		switch {
		case gone(ierr) && l.publish != publishLink:
			continue
		case gone(ierr):
			if linkRefused(err) && !l.claimIntact(l.claim) {
				// Our claim's name was given to another file, which the
				// system refuses to link (fs.protected_hardlinks).
				l.dropClaim()
				continue
			}
			if linkRefused(err) {
				if ok, err := l.linksWork(l.claim); err != nil {
					return false, err
				} else if !ok {
					l.goPortable(l.claim)
				}
			}
			continue
		case ierr != nil && l.retryable(ierr):
			l.cfg.logger.Debug("flock: retrying after read error", "path", l.path, "err", ierr)
			return false, nil
		case ierr != nil:
			return false, ierr
		case s.names(l.claim.name):
			// A lost reply (the link happened), or a forgery.
			ok, err := l.mine(s)
			if err != nil || !ok {
				return false, err
			}
			return l.acquired()
		case l.breakable(s):
			_, err := l.breakLocked(s, false)
			if errors.Is(err, errBreaking) || errors.Is(err, fs.ErrPermission) {
				// Contention: another breaker is at work, or the lock
				// file is another user's in a sticky directory, which
				// only that user or root can remove.
				l.waiting = l.blockedBy(s, err)
				return false, nil
			}
			if err != nil {
				return false, err
			}
			continue
		default:
			return false, nil
		}
	}
	return false, nil
}

// readyClaim makes sure a claim exists and bears the expiry of a lock
// taken now, which the lock file shares once linked.
func (l *Lock) readyClaim() error {
	var expiry, stored time.Time
	if l.claim != nil && l.claim.f == nil {
		l.dropClaim() // published and given up: its name is spent
	}
	l.claimTimed = l.read()
	if l.claim != nil {
		var err error
		if expiry, stored, err = l.retimeClaim(); err != nil {
			return err
		}
	} else {
		c, err := l.newClaim(l.lifetime)
		if err != nil {
			return err
		}
		l.claim = c
		expiry, stored = c.expiry, c.info.ModTime
		if stored.Before(expiry) {
			l.noteCut(expiry, stored)
		}
	}
	if err := l.unstorable(expiry, stored, l.lifetime); err != nil {
		return err
	}
	for range 2 {
		if !stored.Before(expiry) {
			break
		}
		if !l.cutTimes.Load() && !l.cut2.Load() || l.storedLease(l.claimTimed, stored) >= l.lifetime/2 {
			break
		}
		// The cut took more than half the lease (a lifetime of a
		// second or three, on times kept to one or two seconds, before
		// the Lock knew that; the lease might be over already): write
		// it again, rounded up to the grain it knows now (expiryIn).
		// Rounded up to a second, FAT may cut it again, which teaches
		// its grain: a second time, then.
		l.claimTimed = l.read()
		var err error
		if expiry, stored, err = l.retimeClaim(); err != nil {
			return err
		}
		if err := l.unstorable(expiry, stored, l.lifetime); err != nil {
			return err
		}
	}
	// As the filesystem stored it, which may be to the second.
	l.claimExpiry = minTime(expiry, stored)
	return nil
}

// retimeClaim sets the times of the claim, which holds nothing yet, to
// the expiry of a lock taken now, timed at claimTimed, and returns that
// expiry and the time the filesystem stored (writeExpiry).
func (l *Lock) retimeClaim() (expiry, stored time.Time, err error) {
	expiry = l.expiryIn(l.lifetime)
	stored, err = l.writeExpiry(l.claim.f, expiry, l.claimTimed, time.Time{})
	return expiry, stored, err
}

// writeExpiry sets the times of f, our claim or the lock file of our
// claim, to expiry, whose clocks were read at before, and reads them back
// (confirmTimes, with within as there). It keeps the time read as the
// claim's stamp, learns from it, and returns the expiry as the filesystem
// stored it: the time read, or, where none could be read or it lies past
// expiry (a stale read), expiry cut to two seconds, the least a filesystem
// keeps of it.
func (l *Lock) writeExpiry(f fsys.File, expiry time.Time, before reading, within time.Time) (time.Time, error) {
	l.claim.stamp = time.Time{}
	if err := f.SetTimes(expiry); err != nil {
		return time.Time{}, err
	}
	stored := expiry.Truncate(2 * time.Second) // unread
	info, err := f.Stat()
	if err != nil {
		return stored, nil
	}
	if !within.IsZero() && !mutated("retime-past-new-lease") {
		// Once written, the lease that stands on disk ends at the new
		// expiry, as stored, where that is the earlier: a refresh to
		// a shorter lifetime.
		within = minTime(within, stored)
	}
	if info, err = l.confirmTimes(f, expiry, info, within, false); err != nil {
		return time.Time{}, err
	}
	l.claim.stamp = info.ModTime
	l.observeTimes(before, info, expiry)
	if info.ModTime.After(expiry) {
		return stored, nil
	}
	if info.ModTime.Before(expiry) {
		l.noteCut(expiry, info.ModTime)
	}
	return info.ModTime, nil
}

// confirmTimes returns the attributes of f read after its times were set
// to t: info, or, where info shows neither t nor t as a coarser grain cuts
// it (shows), those read after setting the times again, twice at most.
// sshfs can answer from attributes that a directory listing read before
// the change and cached after it (about one create in 3,000 beside a
// process that lists the directory), which would make an expiry look
// unstorable or a lease over at once; setting the times again drops them.
// What the last read says stands (see unstorable); a failure to set or
// read the times again is returned. A zero t, times left as the write
// stamped them, is kept.
//
// f is a claim of ours not at the lock path, or, with a non-zero within,
// the lock file of our lease that ends at within, the lease under which
// its times were just set: they are set again only within that lease, as
// the first time. first says that f was just created with those times
// (see shows).
func (l *Lock) confirmTimes(f fsys.File, t time.Time, info fsys.Info, within time.Time, first bool) (fsys.Info, error) {
	if mutated("no-times-confirm") {
		return info, nil
	}
	for range 2 {
		if t.IsZero() || l.shows(info.ModTime, t, first) {
			break
		}
		if !within.IsZero() && l.leaseOver(within) {
			break
		}
		l.cfg.logger.Debug("flock: attributes read after setting a file's times do not show them; setting them again", "path", l.path, "set", t, "read", info.ModTime)
		if err := f.SetTimes(t); err != nil {
			return info, err
		}
		again, err := f.Stat()
		if err != nil {
			return info, err
		}
		grain := again.ModTime.Equal(info.ModTime) && again.ModTime.Equal(t.Truncate(2*time.Second))
		info = again
		if grain {
			// The same time again, cut to two seconds: FAT's grain,
			// which a re-set does not change, where a stale read would
			// have been dropped. Expiries are rounded up to it.
			l.cut2.Store(true)
			break
		}
	}
	return info, nil
}

// shows reports whether a modification time read back after the times
// were set to t shows t: t itself, or t cut to a grain a filesystem keeps
// (100 ns: NTFS, SMB; a microsecond; exFAT's 10 ms; a second: sshfs,
// ext3, HFS+), or, on the first times of a file just created, to FAT's
// two seconds where a stale read cannot show that. A stale read shows the
// times from before: for a file just created, the time it was written,
// which the filesystem's clock may show already; for one timed before,
// any expiry written earlier, which may well look cut to two seconds, so
// such a read there is set again (confirmTimes), which teaches FAT's grain
// once, and expiries are rounded up to it from then on.
func (l *Lock) shows(read, t time.Time, first bool) bool {
	for _, g := range []time.Duration{0, 100 * time.Nanosecond, time.Microsecond, 10 * time.Millisecond, time.Second} {
		if read.Equal(t.Truncate(g)) {
			return true
		}
	}
	if !first || !read.Equal(t.Truncate(2*time.Second)) || t.Nanosecond() == 0 {
		return false
	}
	_, hi := l.fsNow()
	return read.After(hi)
}

// unstorable returns an error matching ErrInvalid if expiry, written for
// a lease of life, came back as stored more than a cut to the second (or
// FAT's two) would make it earlier: the time lies beyond what the
// filesystem keeps (sshfs wraps times past 2106 round to 1970), and a
// lock file bearing it would be expired at once.
func (l *Lock) unstorable(expiry, stored time.Time, life time.Duration) error {
	if expiry.Sub(stored) <= 2*time.Second {
		return nil
	}
	return fmt.Errorf("%w: the filesystem stored the expiry %v as %v: a lifetime of %v reaches past the times it keeps", ErrInvalid, expiry, stored, life)
}

// fitsTimes tells, by unstorable, whether the filesystem keeps the expiry
// of a lease of life from now, before a Refresh writes one that long: it
// tries it on a fresh claim-shaped file of its own, not on the lock file,
// which others would judge by a wrapped time at once. Where no such file
// can be made (a full filesystem, a directory no longer writable), which
// a refresh itself does not need, it refuses only an expiry past the
// latest time of 32-bit unsigned seconds, where sshfs's times wrap.
func (l *Lock) fitsTimes(life time.Duration) error {
	c, err := l.newClaim(life)
	if err != nil {
		if expiry := l.expiryIn(life); expiry.After(time.Unix(math.MaxUint32, 0)) {
			return fmt.Errorf("%w: a lifetime of %v gives an expiry, %v, past what many filesystems keep, and no file could be made to try it: %w", ErrInvalid, life, expiry, err)
		}
		return nil
	}
	defer l.dropOwn(c)
	return l.unstorable(c.expiry, c.info.ModTime, life)
}

// noteEarlyLoss gives the lock up if a keep-alive reported it lost by its
// own clocks (keeper.reportEarly ends the acquisition then, without the
// mutex, which a stuck refresh or other call may hold), so that a
// Release, Refresh or IsLocked that waited behind that call says so too.
func (l *Lock) noteEarlyLoss() {
	if !l.held || l.acq == nil {
		return
	}
	if cause := l.acq.lostEarly(); cause != nil {
		l.lose(cause)
	}
}

// publishClaim puts the lock file of claim c, whose expiry is expiry, at
// path (the lock path, or the breakers' lock), failing with an error that
// matches fs.ErrExist if a file is there, in the Lock's way of publishing.
// Where the filesystem refuses a rename without replacing, it moves on to
// creating the lock file.
func (l *Lock) publishClaim(c *claimFile, path string, expiry time.Time) error {
	switch l.publish {
	case publishLink:
		err := l.cfg.fs.Link(c.name, path)
		if gone(err) && l.ident != identityNo {
			// A lost reply to a link that happened, answered ENOENT
			// or ESTALE by its retransmission: path is our claim's
			// very file. (Where identity is not reported the claim is
			// dropped, and the lock file it left expires.)
			if s, ierr := l.inspect(path); ierr == nil && s.names(c.contents()) && s.info.SameFile(c.info) {
				return nil
			}
		}
		return err
	case publishMove:
		err := l.cfg.fs.RenameNoReplace(c.name, path)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			l.publish, l.ident = publishCreate, identityNo
			portableDirs.Store(portableKey{l.cfg.fs, l.dir}, publishCreate)
			return l.publishClaim(c, path, expiry)
		case gone(err):
			// A lost reply to a move that happened leaves our claim,
			// the file we hold open, at path.
			if s, ierr := l.inspect(path); ierr == nil && s.names(c.contents()) && s.info.SameFile(c.info) {
				return nil
			}
		}
		return err
	}
	if c.pub != nil {
		// The lock file of an earlier try, broken since.
		c.pub.Close()
		c.pub = nil
	}
	// Created with the filesystem's times, which make it expire at once:
	// until the slop has passed, no breaker touches it, and the expiry is
	// set within that. Where a descriptor's time change goes by path
	// (sshfs), a later one could land on another's lock file; a failure
	// after the create leaves the file to expire rather than remove by
	// name what may have replaced it.
	start := l.read()
	f, err := l.cfg.fs.Create(path, []byte(c.contents()), time.Time{})
	if errors.Is(err, fs.ErrExist) || l.refusedAsTaken(err) {
		if l.adopt(c, path) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if took, agree := start.since(l.read()); !agree || took > max(l.cfg.slop/2, time.Second) {
		// Paused (by the run clock or the wall clock), or a clock
		// step: the file may be broken and replaced by now.
		f.Close()
		return errSlowCreate
	}
	if err := f.SetTimes(expiry); err != nil {
		f.Close()
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	c.pub, c.pubInfo = f, info
	l.dropClaimFile(c)
	return nil
}

// errSlowCreate says that creating the lock file took so long that it
// may no longer be ours; it is left to expire, under a claim given up.
var errSlowCreate = errors.New("flock: creating the lock file took too long to trust")

// dropClaimFile closes and removes c's claim file once c has created its
// lock file: nothing needs it any more (its name lives on in the lock
// file, where contents decide), and a crash then leaves only the lock
// file, which expires. It is closed first: a FUSE client keeps a removed
// file that is still open under a hidden name.
func (l *Lock) dropClaimFile(c *claimFile) {
	c.f.Close()
	c.f = nil
	if err := l.cfg.fs.Remove(c.name); err != nil && !gone(err) {
		l.cfg.logger.Debug("flock: removing a published claim", "path", c.name, "err", err)
	}
}

// refusedAsTaken reports an error of publishClaim that may mean that a
// file was in the way: sshfs answers EPERM to a link or an exclusive
// create onto a name that appeared after its lookup (SFTP reports it as a
// plain failure). A rename without replacing says EEXIST.
func (l *Lock) refusedAsTaken(err error) bool {
	return linkRefused(err) && l.publish != publishMove
}

// adopt takes as c's lock file the file at path after a create refused
// with EEXIST, if it names c and its owner is c's: the create happened
// and its reply was lost. Nobody else knew c's name before this create,
// but for the directory's readers; of those, only c's owner (or root)
// could have made a file owned by c's owner.
func (l *Lock) adopt(c *claimFile, path string) bool {
	f, err := l.cfg.fs.Open(path)
	if err != nil {
		return false
	}
	s, err := read(f)
	if err != nil || !s.names(c.contents()) || s.info.Uid != c.info.Uid {
		f.Close()
		return false
	}
	c.pub, c.pubInfo = f, s.info
	l.dropClaimFile(c)
	return true
}

// portableDirs remembers, per filesystem and directory, the portable way
// of publishing that a Lock of this process found it needs there, so that
// later Locks (guard makes one per acquisition) start with it.
var portableDirs sync.Map // portableKey → publishing

type portableKey struct {
	fs  fsys.FS
	dir string
}

// goPortable switches to the portable ways of publishing, after finding
// with c, a claim of ours, that the filesystem refuses hard links.
func (l *Lock) goPortable(c *claimFile) {
	l.cfg.logger.Debug("flock: no hard links here; publishing the lock file without them", "dir", l.dir)
	l.publish = publishMove
	portableDirs.LoadOrStore(portableKey{l.cfg.fs, l.dir}, publishMove)
	if c.info.Ino != 0 {
		l.ident = identityYes
	} else {
		l.ident = identityNo
	}
}

// linked is called after link(2) of our claim to the lock path succeeded.
// It checks that the lock file is our claim before anything else: where
// the filesystem reports identity, that is certain; elsewhere, the link
// having succeeded is all there is, and acquired checks the contents.
// Nothing is written here: times are only ever set through our claim.
func (l *Lock) linked() (bool, error) {
	if l.ident == identityYes {
		return l.acquired() // which looks before it counts the lock as held
	}
	s, err := l.look()
	if gone(err) || errors.Is(err, ErrNotRegular) {
		return false, nil // broken already: we paused past the lifetime
	}
	if err != nil {
		return false, err
	}
	if s.info.SameFile(l.claim.info) {
		l.ident = identityYes
		return l.acquired()
	}
	if l.ident == identityUnknown {
		err := l.learnIdentity(l.claim)
		if claimLost(err) {
			// Our claim is gone (a breaker removed it with the lock
			// file we linked, after we paused past the lifetime), or its
			// name was given to another file, which we linked.
			l.dropClaim()
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	if l.ident == identityYes {
		return false, nil // replaced since we linked: we paused past the lifetime
	}
	return l.acquired()
}

// look reads the lock file as it is now. Where the filesystem reports no
// identity (sshfs), its client caches attributes by path, even an earlier
// file's size, which would cut the read short: the file is read through a
// new hard link of our own, whose path has nothing cached. The probe
// costs nothing to flufl.lock holders there, whose link counts are not
// real anyway.
func (l *Lock) look() (snapshot, error) {
	if l.ident != identityNo || l.publish != publishLink {
		return l.inspect(l.path)
	}
	s, linked, err := l.viaProbe()
	if !linked && linkRefused(err) {
		// Links refused (sshfs -o disable_hardlink) leave only the
		// cached view.
		return l.inspect(l.path)
	}
	return s, err
}

// learnDirect finds out, from a new claim's attributes info, whether the
// lock's directory lies on a filesystem where quickMine may look
// (fsys.Direct), and one where names can be swapped (fsys.Swapper). It
// asks once per filesystem: again only when a claim lands on another
// device (a filesystem mounted over the directory since), and then
// forgets what it knew of identity there.
func (l *Lock) learnDirect(info fsys.Info) {
	if l.directKnown && info.Dev == l.directDev {
		return
	}
	if l.directKnown {
		l.ident = identityUnknown
	}
	d, ok := l.cfg.fs.(fsys.Direct)
	l.direct = ok && d.Direct(l.dir)
	s, ok := l.cfg.fs.(fsys.Swapper)
	l.swaps = l.direct || ok && s.Swaps(l.dir)
	l.directKnown, l.directDev = true, info.Dev
	// A filesystem that swaps names is a local kernel's, which keeps
	// identity: overlayfs, which is not Direct, keeps a file's numbers
	// through copy-up. A removal there must know it from the start, or a
	// holder would not mark its swapped-out file (yieldSwapped), and a
	// remover would leave its own standing in for it, a stall (the
	// review of 01e72b0).
	if l.swaps {
		l.ident = identityYes
	}
}

// quickLooks reports whether one Lstat of the lock path can tell about
// our claim c: the filesystem answers Lstat from the file itself and
// keeps an open file's numbers to it (fsys.Direct), c is held open, and
// the lock file is linked or moved into place, so that it is c's file.
func (l *Lock) quickLooks(c *claimFile) bool {
	return l.direct && c != nil && c.f != nil && l.publish != publishCreate
}

// quickMine reports whether the file at path is, by one Lstat, the lock
// file of claim c, held open by this Lock, with the times c last set: on
// a filesystem that answers Lstat from the file itself and keeps an open
// file's numbers to it (fsys.Direct), that file can be no other. False
// says only that this look cannot tell: the full look decides.
func (l *Lock) quickMine(path string, c *claimFile) bool {
	if !l.quickLooks(c) || c.stamp.IsZero() {
		return false
	}
	_, want := c.file()
	i, err := l.cfg.fs.Lstat(path)
	if mutated("quick-look-by-name") {
		return err == nil
	}
	return err == nil && i.Mode.IsRegular() && i.SameFile(want) && i.Uid == want.Uid && i.ModTime.Equal(c.stamp)
}

// heldQuick reports, by one Lstat, that the lock file another holds is
// in its lease still, so that an attempt refused by it can wait without
// reading it: on a filesystem where Lstat answers from the file itself
// (fsys.Direct), a regular file at the lock path that is not our claim,
// of our own user and readable by it, and whose expiry the rules do not
// yet let anyone break. False says only that this look cannot tell (or
// that the lock may be breakable, or WithDeadOwnerBreak asks who holds
// it): the full read decides. Waiting changes nothing, so this look needs
// no more than the times.
func (l *Lock) heldQuick() bool {
	if l.cfg.deadOwnerBreak || !l.quickLooks(l.claim) {
		return false
	}
	i, err := l.cfg.fs.Lstat(l.path)
	if err != nil || !i.Mode.IsRegular() {
		return false
	}
	// Only a file of our own user that the owner may read: one we might
	// not be able to read is left to the full look, which fails on it as
	// it always has. The owner's bits are all that decide for the owner
	// (an access control list's owner entry is those bits); for anyone
	// else, a list, or the group's bits for a group we do not know of,
	// may refuse what the mode shows readable.
	_, own := l.claim.file()
	if i.SameFile(own) || i.Uid != own.Uid || i.Mode.Perm()&0o400 == 0 {
		return false
	}
	// Judged as an attempt judges it, by its times alone (without
	// WithDeadOwnerBreak, breakable reads nothing else).
	return !l.breakable(snapshot{info: i})
}

// viaProbe reads the lock file through a new hard link of our own, whose
// path no client has cached, and removes the link again. linked is false
// when the link could not be made, and err then says why.
func (l *Lock) viaProbe() (s snapshot, linked bool, err error) {
	probe := l.freshName()
	if err := l.cfg.fs.Link(l.path, probe); err != nil && !errors.Is(err, fs.ErrExist) {
		return snapshot{}, false, err // a fresh name of ours: EEXIST is a lost reply
	}
	s, err = l.inspect(probe)
	if rerr := l.cfg.fs.Remove(probe); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing probe link", "path", probe, "err", rerr)
	}
	return s, true, err
}

// acquired is called once the lock file was seen to be our claim. It takes
// a fencing token if asked to, counts the lifetime from now (through our
// claim's descriptor), and then looks again: a pause anywhere before that
// may have outlasted the lifetime and let another process in.
func (l *Lock) acquired() (bool, error) {
	l.held = true
	var file fsys.Info // known only where the filesystem keeps identity
	if l.ident == identityYes {
		file = l.claim.info
	}
	l.acq = newAcquisition(l.claim.name, file)
	// Until the expiry is written again below, it is the claim's.
	l.acq.setExpiry(l.claimTimed, l.claimExpiry, l.storedLease(l.claimTimed, l.claimExpiry))
	l.token = 0
	if l.cfg.fencing {
		token, err := l.fence()
		if err != nil || token == 0 {
			return false, err
		}
		l.token = token
	}
	// A breaker at work may yet move the file we linked: one that re-read
	// the instance it judged before our link (a flufl.lock holder may
	// release an expired lock; ours do not), and, finding ours instead,
	// puts it back; meanwhile a third process could link. Wait until it
	// is done, then look.
	l.outwaitBreaker()
	// The lease that the link gave may have run out already (a pause since
	// the claim was timed): then a breaker may be at work on the lock file,
	// and a new expiry could change it under them. Leave it to them.
	written := l.read()
	if l.leaseOver(l.claimExpiry) && !mutated("acquire-no-relook") {
		l.lose(ErrLockLost)
		l.lost, l.token = false, 0
		return false, nil
	}
	if l.publish == publishCreate {
		// The expiry goes through a descriptor that may act by path:
		// look first, so that it lands on our own lock file.
		if err := l.check(); err != nil {
			l.lost, l.token = false, 0
			if errors.Is(err, ErrLockLost) {
				return false, nil
			}
			l.giveBack()
			return false, err
		}
	}
	if mutated("expiry-via-path") {
		if f, err := l.cfg.fs.Open(l.path); err == nil {
			f.SetTimes(l.expiryIn(l.lifetime))
			f.Close()
		}
	}
	// The claim's expiry, set just before the link, stands if the lease
	// it gives is nearly whole still; else the lifetime counts from now.
	expiry := l.claimExpiry
	if age, _ := l.claimTimed.since(l.read()); l.publish == publishCreate || age > l.lifetime/100 {
		var err error
		if expiry, err = l.setExpiry(l.claimExpiry); err != nil {
			l.giveBack()
			return false, err
		}
	} else {
		written = l.claimTimed
	}
	if mutated("acquire-no-relook") {
		l.acq.setExpiry(written, expiry, l.storedLease(written, expiry))
		return true, nil
	}
	if err := l.check(); err != nil {
		l.lost, l.token = false, 0
		if errors.Is(err, ErrLockLost) {
			return false, nil // lost already: the next attempt starts afresh
		}
		l.giveBack()
		return false, err
	}
	if l.leaseOver(l.claimExpiry) && !mutated("acquire-no-relook") {
		// A pause since the lease was judged: the expiry may have been
		// written while a breaker judged the instance expired, and where
		// nothing moved aside can be put back, its move would not be
		// undone. Leave the lock file to the breakers.
		l.lose(ErrLockLost)
		l.lost, l.token = false, 0
		return false, nil
	}
	l.acq.setExpiry(written, expiry, l.storedLease(written, expiry))
	return true, nil
}

// outwaitBreaker waits while another process holds the breakers' lock
// within its lease (by its clock, which may lag ours by the clock slop): a
// breaker moves nothing once its lease is over, and a breaker at work is
// done in milliseconds. The wait is bounded in real time too, so that a
// breaker that stalls (or a breakers' lock planted and kept fresh) delays
// an acquisition by outwaitMax at most.
func (l *Lock) outwaitBreaker() {
	start := time.Now()
	for d := time.Millisecond; time.Since(start) < outwaitMax; d = min(2*d, 20*time.Millisecond) {
		s, err := l.inspect(l.breakersPath())
		if err != nil || l.breakersBreakable(s) || l.expiredBy(s.info, l.cfg.slop) {
			return
		}
		time.Sleep(d)
	}
}

// outwaitMax bounds outwaitBreaker's wait. A breaker's last reads of the
// lock file and of the clock lie within recheckMax of each other (see
// breakLocked), so that a breaker whose reads were still of an earlier
// instance moves the file before an acquirer that linked meanwhile is done
// waiting for it, and that acquirer's look then sees what the move did.
const (
	outwaitMax = time.Second
	recheckMax = outwaitMax * 4 / 5
)

// giveBack releases a lock just taken whose acquisition cannot complete.
func (l *Lock) giveBack() {
	if err := l.releaseLocked(); err != nil && !errors.Is(err, ErrNotLocked) && !errors.Is(err, ErrLockLost) {
		l.cfg.logger.Warn("flock: releasing after a failed acquisition", "path", l.path, "err", err)
		l.held = false
		l.acq.end(ErrNotLocked)
	}
}

// setExpiry sets the claim's times, and so the lock file's, to now plus
// the lifetime, through the claim's own descriptor: if the lock was broken
// and taken since, this touches our orphaned file, never the new holder's.
// It returns the expiry as the filesystem stored it (which may be cut to
// whole seconds), as others will judge it. within is the end of the lease
// under which it is written, which the caller has judged not over.
func (l *Lock) setExpiry(within time.Time) (time.Time, error) {
	return l.setExpiryTo(within, l.expiryIn(l.lifetime))
}

// setExpiryTo is setExpiry of the expiry given, from expiryIn.
func (l *Lock) setExpiryTo(within, expiry time.Time) (time.Time, error) {
	before := l.read()
	f, _ := l.claim.file()
	return l.writeExpiry(f, expiry, before, within)
}

// breakable reports whether the lock instance s, held by another, may be
// broken: its expiry and the clock slop have passed and it is not
// settling, or, with WithDeadOwnerBreak, its holder was a process of this
// host that is gone.
func (l *Lock) breakable(s snapshot) bool {
	return l.breakableSeen(s, s)
}

// breakableSeen is breakable for s, with whether it is settling judged by
// seen, an earlier read of the same instance: the read before a probe
// link, which changes what it links and so must not count as a change.
func (l *Lock) breakableSeen(s, seen snapshot) bool {
	l.learnTime()
	if l.expiredBy(s.info, l.cfg.slop) && !l.settling(seen) {
		return true
	}
	return l.cfg.deadOwnerBreak && l.deadHolder(s.contents)
}

// settling reports whether s, a lock file of flufl.lock's (its contents
// name a claim without our tag), changed after its expiry and less than
// linkSettle ago by the filesystem's clock, which stamps the change time.
// flufl.lock's lock() times its claim when it starts waiting and again
// only after its link has taken the lock, so a Python process that waited
// longer than its lifetime and the slop links a lock file that looks
// expired until that second timing, microseconds later. Broken in that
// moment, it has two holders: lock() returns all the same. Go waiters,
// woken by the link itself where changes are notified, met that moment
// within a tenth of a millisecond in mixed kill storms. Such a file is
// judged once it has settled. It has two links, its claim's name and the
// lock path; a file with a single link (planted, or where link counts are
// not real, where no Python holder works) never settles. Our own claims
// are timed just before their link and never settle; nor does anything
// where the filesystem keeps no change time of its own (sshfs copies the
// modification time; Windows).
func (l *Lock) settling(s snapshot) bool {
	c := s.info.ChangeTime
	if c.IsZero() || !c.After(s.info.ModTime) || s.info.Nlink < 2 || mutated("no-link-settle") {
		return false
	}
	name := bytes.TrimSpace(s.contents)
	if _, ok := claim.Parse(name, l.cfg.sep); !ok {
		return false
	}
	if _, tagged := claim.TagOf(string(name), l.cfg.sep); tagged {
		return false
	}
	lo, hi := l.fsNow()
	// A change time beyond the filesystem's clock and the slop says that
	// clocks are wrong, not that the file has just changed.
	return lo.Before(c.Add(linkSettle)) && !c.After(hi.Add(l.cfg.slop))
}

// linkSettle is how long a lock file of flufl.lock's that changed after
// its expiry is left to settle (see settling): a second, far longer than
// flufl.lock takes from its link to its next timing of the claim even on a
// loaded machine, and a second more for filesystems that keep change times
// in whole seconds; short beside a lifetime. Only such files wait for it.
const linkSettle = 2 * time.Second

// abandon removes the claim after a failed attempt, so nothing is left
// behind while the Lock is idle.
func (l *Lock) abandon() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		l.dropClaim()
	}
}

// errLeaseOver is Refresh's error when the lease had already run out.
var errLeaseOver = fmt.Errorf("%w: the lifetime ran out before the refresh", ErrLockLost)

// lostBecause is ErrLockLost, saying why when the lock path now holds
// something other than a regular file.
func lostBecause(err error) error {
	if errors.Is(err, ErrNotRegular) {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return ErrLockLost
}

// lose records that the lock is no longer ours, ends the acquisition's
// keepers with cause, and removes our claim: no lock file names it any
// more (or one does that is not ours to touch).
func (l *Lock) lose(cause error) {
	l.held = false
	l.lost = true
	l.acq.end(cause)
	l.dropClaim()
	l.cfg.logger.Warn("flock: lock lost", "path", l.path)
}

// check reads the lock file and reports whether it is still ours. If it
// is not, the Lock counts the lock as lost. An error other than the lock
// file being gone or replaced leaves the Lock as it was.
func (l *Lock) check() error {
	if l.quickMine(l.path, l.claim) {
		return nil
	}
	s, err := l.look()
	if gone(err) || errors.Is(err, ErrNotRegular) {
		err = lostBecause(err)
		l.lose(err)
		return err
	}
	if err != nil {
		return err
	}
	ok, err := l.mine(s)
	if err != nil {
		return err
	}
	if !ok {
		l.lose(ErrLockLost)
		return ErrLockLost
	}
	return nil
}

func (l *Lock) releaseLocked() error {
	l.noteEarlyLoss()
	if l.lost {
		l.lost = false
		l.dropClaim()
		return ErrLockLost
	}
	if !l.held {
		l.dropClaim()
		return ErrNotLocked
	}
	// Look before touching: a lock file that is not ours stays as it is.
	if err := l.check(); err != nil && !mutated("release-no-look") {
		if errors.Is(err, ErrLockLost) {
			l.lost = false
			return l.lostWhy(err, l.acq)
		}
		return err
	}
	// And touch it only within the lease: past it, a breaker may be moving
	// the lock file this very moment, and another process may have taken
	// the lock since we looked. The lock file is left to the breakers.
	if expiry, _, _, _ := l.acq.state(); l.leaseOver(expiry) && !mutated("release-no-lease") && !mutated("release-no-look") {
		err := fmt.Errorf("%w: the lease ran out at %v, before the release; the lock file is left for others to break", ErrLockLost, expiry)
		l.held = false
		l.acq.end(err)
		l.dropClaim()
		return err
	}
	removed, err := l.removeIf(l.path, func(s snapshot) bool {
		ok, _ := l.mine(s)
		return ok
	}, func(aside string) bool { return l.quickMine(aside, l.claim) })
	if err != nil && !removed {
		return err // still held: Release may be called again
	}
	l.held = false
	l.acq.end(ErrNotLocked)
	if derr := l.dropClaim(); err == nil {
		err = derr
	}
	if !removed {
		return ErrLockLost
	}
	if err != nil {
		// The lock file is out of the lock's name, so the lock is free:
		// an error now would say it is still held. What could not be
		// removed (the file moved aside, or the claim; on Windows, a
		// file made read-only or held open by another) bears a name of
		// ours, which a sweep removes once this process is gone.
		l.cfg.logger.Warn("flock: released, but a file of the lock could not be removed", "path", l.path, "err", err)
	}
	return nil
}

func (l *Lock) refreshLocked() error {
	l.noteEarlyLoss()
	if l.lost {
		return ErrLockLost
	}
	if !l.held {
		return ErrNotLocked
	}
	// Once the lease has run out, others may be breaking the lock this
	// very moment, judging an instance that a refresh would change under
	// them: the lock counts as lost, and is given up if it is still ours.
	written := l.read()
	old, _, _, _ := l.acq.state()
	if l.leaseOver(old) && !mutated("refresh-no-lease") {
		l.lose(errLeaseOver)
		return errLeaseOver
	}
	// Write first, then look: the write only reaches our own claim, and
	// the look afterwards tells whether that is still the lock file. Only
	// then does the new expiry count. Where the write may go by path (a
	// created lock file, on sshfs), look first too.
	if l.publish == publishCreate {
		if err := l.check(); err != nil {
			return err
		}
	}
	next := l.expiryIn(l.lifetime)
	if next.Before(old) {
		// A refresh to a shorter lifetime: its write may land as soon
		// as it is sent, however long its reply takes (a hard mount) or
		// whatever the calls after it say, and others judge the lock by
		// it: the new expiry is the lease from now on. (expiryIn rounds
		// it up to the grain the filesystem was seen to keep; the clock
		// slop covers one not yet seen.) A keep-alive then says the lock
		// is lost when it ends, if this call is still stuck.
		l.acq.setExpiry(written, next, l.storedLease(written, next))
	}
	expiry, err := l.setExpiryTo(old, next)
	if err != nil {
		if gone(err) {
			err = ErrLockLost
			l.lose(err)
		}
		return err
	}
	if next.Before(old) && expiry.Before(next) {
		// The shorter expiry, as the filesystem stored it: earlier than
		// the one sent, where it cut it.
		l.acq.setExpiry(written, expiry, l.storedLease(written, expiry))
	}
	if mutated("refresh-no-look") {
		l.acq.setExpiry(written, expiry, l.storedLease(written, expiry))
		return nil
	}
	if err := l.check(); err != nil {
		return err
	}
	if l.leaseOver(minTime(old, expiry)) && !mutated("refresh-no-lease") {
		// A pause since the lease was judged: a breaker may have judged
		// the instance expired meanwhile, and the new expiry came too
		// late to count (where nothing moved aside can be put back, the
		// breaker's move would not be undone). After a refresh to a
		// shorter lifetime, the new expiry is the lease on disk.
		err := errLeaseOver
		if expiry.Before(old) && !l.leaseOver(old) {
			// The old lease stood: it is the shorter one written that
			// ran out before the look after it was done.
			err = fmt.Errorf("%w: the refresh's expiry, %v, passed before the refresh could confirm that the lock file was still ours", ErrLockLost, expiry)
		}
		l.lose(err)
		return err
	}
	if cause := l.acq.lostEarly(); cause != nil {
		// A keep-alive said the lock was lost while this refresh was
		// stuck: so it is.
		l.lose(cause)
		return fmt.Errorf("%w: the lifetime ran out while the refresh was stuck", ErrLockLost)
	}
	l.acq.setExpiry(written, expiry, l.storedLease(written, expiry))
	return nil
}

// linksWork tells a filesystem without hard links from a refused link that
// was contention: sshfs answers EPERM both where links are disabled and
// where the lock file appeared between its lookup and the link (and may be
// gone again by the time we look). It links our claim to a fresh name of
// our own, which nothing else can be using: c's, a claim of ours.
func (l *Lock) linksWork(c *claimFile) (bool, error) {
	probe := l.freshName()
	err := l.cfg.fs.Link(c.name, probe)
	if err == nil || errors.Is(err, fs.ErrExist) {
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

// recheck reads the lock instance s again now that this Lock is the only
// breaker, and reports what it shows and whether that is still the same
// instance and still breakable (or force is set). Where the lock file
// shows real link counts, reading it again through the lock path is
// enough: opening it revalidates what a network client cached. Elsewhere
// (sshfs caches attributes by path for up to 20 s, even the expiry of an
// earlier file at that path), it is read through a new hard link of our
// own, whose path has nothing cached. flufl.lock holders count links, so
// the probe link is made only where link counts are not real anyway.
func (l *Lock) recheck(s snapshot, force bool) (snapshot, bool) {
	fresh, err := l.inspect(l.path)
	if err != nil || !bytes.Equal(fresh.contents, s.contents) {
		return s, false
	}
	if fresh.info.Ino != 0 && s.info.Ino != 0 && !fresh.info.SameFile(s.info) {
		return s, false
	}
	if l.ident == identityYes || l.ident == identityUnknown && fresh.info.Nlink >= 2 || l.publish != publishLink {
		// Without links there is no fresh path to read through: the
		// clock slop covers the attribute cache (doc.go, Clock slop).
		return fresh, force || l.breakable(fresh)
	}
	viaProbe, _, err := l.viaProbe()
	if err != nil || !bytes.Equal(viaProbe.contents, s.contents) {
		return s, false
	}
	// The probe's own inode number may differ (sshfs numbers by path);
	// what is moved aside keeps the lock path's.
	viaProbe.info.Ino, viaProbe.info.Dev = fresh.info.Ino, fresh.info.Dev
	// Whether it is settling is judged on the read before the probe, whose
	// link changes the file; unless that read's times are an earlier
	// file's, cached by path, and then on the probe's, which errs towards
	// waiting.
	seen := fresh
	if !fresh.info.ModTime.Equal(viaProbe.info.ModTime) {
		seen = viaProbe
	}
	return viaProbe, force || l.breakableSeen(viaProbe, seen)
}

// breakLocked removes the lock instance s, which was judged expired (or is
// to be broken by force), and the claim it names. It reports whether it
// removed s; false if the lock file changed meanwhile, or another process
// is breaking it right now (then the error wraps errBreaking). Called with
// l.mu held.
func (l *Lock) breakLocked(s snapshot, force bool) (bool, error) {
	if mutated("naive-break") {
		if err := l.cfg.fs.Remove(l.path); err != nil && !gone(err) {
			return false, err
		}
		l.removeNamedClaim(s)
		return true, nil
	}
	if mutated("no-breakers-lock") {
		s, ok := l.recheck(s, force)
		if !ok {
			return false, nil
		}
		return l.removeIf(l.path, sameInstance(s), nil)
	}
	b, err := l.lockBreakers()
	if force && errors.Is(err, errBreaking) {
		b, err = l.outwaitBreakers()
	}
	if err != nil {
		return false, err
	}
	defer l.unlockBreakers(b)
	if l.publish == publishCreate && !mutated("no-cache-wait") {
		// Here nothing moved aside can be put back, so the breaker must
		// read the lock file as it is, past the attribute cache.
		if err := l.outwaitCache(b); err != nil {
			return false, err
		}
	}
	// The breakers' lock must still be ours, on disk and by its lease (a
	// breaker whose lock was broken by force, or that paused past the
	// lease, may have company by now). Then the lock file is read again,
	// the breakers' lock looked at once more, and the clock read last,
	// just before the move: a pause longer than the slop between the two
	// is the one window no lock file closes (see doc.go), and the move's
	// check puts back what it should not have moved. The first look also
	// teaches a new Lock whether the filesystem keeps identity across
	// names, so that the re-read need not go through a probe link, which
	// a flufl.lock holder would count (the eleventh review). The second
	// sees a removal of a stale breakers' lock that moved ours aside
	// during the re-read (whoever removes one moves aside whatever stands
	// there by then): without it, another process could take the
	// breakers' lock and the lock in that gap, and our move of its fresh
	// lock file, and the put-back, let a fourth link beside it (the tenth
	// review). Such a removal never puts ours back (removeIf), so that
	// the second look sees it however soon it was done; one that lands
	// after the second look still goes unseen: docs/RELIABILITY.md.
	ours := func() (bool, error) {
		if mutated("breakers-no-relook") {
			return true, nil
		}
		cur, err := l.inspect(l.breakersPath())
		if err != nil {
			return false, nil
		}
		mine, err := l.isFileOf(cur, b)
		if err == nil && !mine {
			l.yieldSwapped(b, cur)
		}
		return mine, err
	}
	if mine, err := ours(); err != nil || !mine {
		return false, err
	}
	start := l.read()
	s, ok := l.recheck(s, force)
	if ok {
		if mine, err := ours(); err != nil || !mine {
			return false, err
		}
	}
	took, agree := start.since(l.read())
	if !ok || l.breakLeaseOver(b) {
		return false, nil
	}
	if (!agree || took > recheckMax) && !mutated("recheck-unbounded") {
		// A pause while reading, by the run clock, which no one sets,
		// or the wall clock, or a clock step: what was read may be an
		// instance that was released and taken again meanwhile.
		return false, nil
	}
	var moved snapshot
	broke, err := l.removeIf(l.path, func(m snapshot) bool {
		moved = m
		return mutated("no-move-check") || sameInstance(s)(m)
	}, nil)
	if err != nil || !broke {
		return false, err
	}
	why := "expired"
	switch {
	case force:
		why = "forced"
	case !l.expiredBy(s.info, l.cfg.slop):
		why = "holder dead" // WithDeadOwnerBreak
	}
	l.cfg.logger.Debug("flock: broke lock", "path", l.path, "why", why, "expiry", s.info.ModTime, "holder", string(bytes.TrimSpace(s.contents)))
	l.removeNamedClaim(moved)
	l.sweepLocked()
	return true, nil
}

// outwaitCache waits, holding the breakers' lock b, for as long as the
// clock slop, which covers the attribute cache of a filesystem without
// hard links (doc.go, Primitives): what the breaker reads of the lock file
// afterwards shows it as it was once the breaker held b, and as no other
// breaker can change it since, it is the instance the move aside will
// find. Without that wait, a read could show the expired instance that
// another breaker replaced with a fresh lock a moment before; and where
// nothing can be put back, the move would remove that fresh lock. b's
// lease is extended as the wait goes on, so that it stays a breaker's.
func (l *Lock) outwaitCache(b *claimFile) error {
	start := l.read().run // no one sets it: a wall clock stepped ahead cuts no wait short
	for left := l.cfg.slop; left > 0; left = l.cfg.slop - (l.read().run - start) {
		// Half b's lease at most: one swapped in (removeBreakers) has a
		// lease of swapTTL until its first extension here.
		if err := retry.Sleep(context.Background(), l.cfg.clock, min(time.Second, left, b.life/2), l.closing); err != nil {
			return err
		}
		select {
		case <-l.closing:
			return ErrClosed
		default:
		}
		// The time change may go by path (sshfs): only onto b, and
		// only within its lease.
		if cur, err := l.inspect(l.breakersPath()); gone(err) {
			return fmt.Errorf("%w (its own breakers' lock was removed while it waited)", errBreaking)
		} else if err != nil {
			return err
		} else if ok, err := l.isFileOf(cur, b); err != nil || !ok || l.breakLeaseOver(b) {
			return fmt.Errorf("%w (lost its own breakers' lock while it waited)", errBreaking)
		}
		f, _ := b.file()
		timed := l.read()
		expiry := l.expiryIn(breakTTL)
		if err := f.SetTimes(expiry); err != nil {
			return err
		}
		// b's lease is what the breaker judges its own by: a
		// breaker's, from now on.
		b.info.ModTime, b.timed, b.life = expiry, timed, breakTTL
		if info, err := f.Stat(); err == nil && info.ModTime.Before(expiry) {
			b.info.ModTime = info.ModTime
		}
	}
	return nil
}

// removeNamedClaim removes the claim that the broken lock file moved
// names: only a name of this lock's in its directory, and where the
// filesystem reports identity only if it is the file that was broken.
func (l *Lock) removeNamedClaim(moved snapshot) {
	name, ok := claim.Removable(moved.contents, l.base, l.cfg.sep)
	if !ok {
		return
	}
	path := filepath.Join(l.dir, name)
	if moved.info.Ino != 0 && l.ident != identityNo {
		i, err := l.cfg.fs.Lstat(path)
		if err != nil || !i.SameFile(moved.info) {
			return
		}
	}
	if err := l.cfg.fs.Remove(path); err != nil && !gone(err) {
		l.cfg.logger.Debug("flock: removing broken lock's claim", "err", err)
	}
}

// sameInstance returns a match for removeIf that accepts only the file
// instance s: the same contents, the same expiry and, where both reads
// report one, the same inode. An inode number alone says little: a freed
// number is handed to the next new file at once.
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

// sameContents returns a match for removeIf that accepts any file of s's
// contents, whatever its times and inode: for a breakers' lock proven
// planted or left by a dead breaker, whose contents name a claim of that
// breaker's own.
func sameContents(s snapshot) func(snapshot) bool {
	return func(moved snapshot) bool { return bytes.Equal(moved.contents, s.contents) }
}

// removeIf removes the file at path (the lock file, or the breakers'
// lock) if match approves of what it holds. To remove only the instance
// that match saw, never one that replaced it meanwhile, it first moves the
// file aside under a name of its own, reads what it moved, and puts it
// back without replacing anything if match refuses it. It reports whether
// it removed the file; false and nil when there was none or it was put
// back. Callers look at path first: the move aside is the guard against a
// change in between, not a way to look.
func (l *Lock) removeIf(path string, match func(snapshot) bool, quick func(aside string) bool) (bool, error) {
	aside := l.freshName()
	if err := l.cfg.fs.Rename(path, aside); err != nil {
		if !gone(err) {
			return false, err
		}
		// Nothing there, or a lost reply to a rename that happened.
		if _, lerr := l.cfg.fs.Lstat(aside); lerr != nil || mutated("lost-rename-reply") {
			return false, nil
		}
	}
	ours := quick != nil && quick(aside)
	var err error
	if !ours {
		var moved snapshot
		moved, err = l.inspect(aside)
		if gone(err) {
			return false, nil
		}
		ours = err == nil && match(moved)
	}
	if ours {
		if err := l.cfg.fs.Remove(aside); err != nil && !gone(err) {
			return true, err
		}
		return true, nil
	}
	if path == l.breakersPath() && !errors.Is(err, ErrNotRegular) && !mutated("breakers-put-back") {
		// Another's breakers' lock, not the one we judged, or one we
		// cannot read (another user's, or a read error): a live
		// breaker's, linked since the judgment, or a remover's swapped
		// in. It stays out, as what a swap takes out does
		// (removeBreakers): its breaker finds it gone at its next look
		// and gives up its break. Put back, it could return after its
		// breaker's reads of the lock file, and another process could
		// have taken the breakers' lock, broken the lock and taken it
		// in the gap, unseen by that breaker's last look
		// (docs/RELIABILITY.md).
		if err != nil {
			l.cfg.logger.Debug("flock: removing a breakers' lock moved aside that could not be read", "path", aside, "err", err)
		}
		if rerr := l.cfg.fs.Remove(aside); rerr != nil && !gone(rerr) {
			l.cfg.logger.Warn("flock: removing a breakers' lock moved aside", "path", aside, "err", rerr)
		}
		return false, nil
	}
	// Not what we meant to remove (or unreadable, which we cannot judge):
	// put it back without replacing any lock file taken since.
	rerr := l.restore(aside, path, errors.Is(err, ErrNotRegular))
	switch {
	case errors.Is(rerr, errKeptAside):
		l.cfg.logger.Warn("flock: a symlink found at the lock path was moved aside and left there; remove it", "path", aside, "err", rerr)
	case rerr != nil:
		l.cfg.logger.Warn("flock: could not put back what was moved aside from the lock path; if it was a lock file, its holder will find the lock lost", "path", path, "err", rerr)
		if rerr := l.cfg.fs.Remove(aside); rerr != nil && !gone(rerr) {
			l.cfg.logger.Warn("flock: removing what was moved aside from the lock path", "path", aside, "err", rerr)
		}
	}
	return false, err
}

// restore moves aside back to path unless something is at path by now. It
// renames without replacing where the filesystem can, which leaves the
// file's link count alone (flufl.lock holders count links); elsewhere it
// links and unlinks. A plain rename would replace a lock file linked at
// path meanwhile, so what is not a regular file goes back the same way,
// but for two kinds that cannot be linked back: a directory is renamed
// back by a plain rename where the filesystem cannot rename without
// replacing (rename refuses to put a directory over a file), and a symlink
// is left where it is, with errKeptAside (link(2) follows a symlink on the
// BSDs and macOS, and over sftp on their servers, and would put its target
// at path: the review of 28e9158).
func (l *Lock) restore(aside, path string, notRegular bool) error {
	if notRegular {
		if i, err := l.cfg.fs.Lstat(aside); err == nil && (i.Mode.IsDir() || i.Mode&fs.ModeSymlink != 0) {
			err := l.cfg.fs.RenameNoReplace(aside, path)
			switch {
			case !errors.Is(err, errors.ErrUnsupported):
				return err
			case i.Mode.IsDir():
				return l.cfg.fs.Rename(aside, path)
			default:
				return errKeptAside
			}
		}
	}
	return moveNoReplace(l.cfg.fs, aside, path)
}

// errKeptAside says that restore left a symlink where it was moved aside.
var errKeptAside = errors.New("a symlink cannot be put back here without a rename that does not replace")

// moveNoReplace renames oldname to newname, failing with an error that
// matches fs.ErrExist rather than replace a file at newname.
func moveNoReplace(fsys fsys.FS, oldname, newname string) error {
	err := fsys.RenameNoReplace(oldname, newname)
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	if err := fsys.Link(oldname, newname); err != nil {
		if linkRefused(err) {
			return fmt.Errorf("%w, nor renames without replacing: %w", ErrLinkUnsupported, err)
		}
		return err
	}
	if err := fsys.Remove(oldname); err != nil && !gone(err) {
		return err
	}
	return nil
}

// Breakers take turns through a second lock beside the lock file, which a
// process holds while it breaks the lock, so that two never break at
// once. Without it, a breaker that judged an instance expired could move
// aside the fresh lock that a faster breaker had taken meanwhile, and
// another process could take the lock before the fresh one was put back.
// Python's flufl.lock does not know it; its own breaker race remains.
//
// A break takes milliseconds, so the breakers' lock has a short lifetime
// of its own, breakTTL, whatever the lock's lifetime; others break it once
// breakSlop has passed after that, one further ahead than breakTTL and
// that slop allow once it has stood unchanged that long (farSeenFor), and
// one further still by farAheadMax at once.
const breakTTL = 5 * time.Second

// errBreaking says that another process holds the breakers' lock.
var errBreaking = errors.New("another process is breaking the lock")

// breakersPath is the breakers' lock, the same for every separator.
func (l *Lock) breakersPath() string { return l.path + ".break" }

// breakSlop is how long past its expiry a breakers' lock stays: the
// lock's clock slop, which covers the hosts' clock differences, but at
// least breakTTL, so that a slop of 0 cannot let a break be broken.
func (l *Lock) breakSlop() time.Duration { return max(l.cfg.slop, breakTTL) }

// lockBreakers takes the breakers' lock: a fresh file of ours, whose
// expiry is breakTTL from now, linked to the breakers' path. One that has
// expired, or lies far ahead and stood unchanged (breakersBreakable), is
// broken like a lock. One that a live breaker holds is not, even by a
// forced break: that breaker would go on to move whatever then stands at
// the lock path.
// It returns an error wrapping errBreaking that says who holds it.
func (l *Lock) lockBreakers() (*claimFile, error) {
	b, err := l.newClaim(breakTTL)
	if err != nil {
		return nil, err
	}
	held, err := l.linkBreakers(b)
	if held != b {
		l.dropOwn(b)
	}
	return held, err
}

// linkBreakers links b to the breakers' path, breaking a broken breakers'
// lock in its way. It returns the breakers' lock it holds: b, or the file
// that removeBreakers swapped in for a broken one; nil, with an error that
// says why, when it holds none.
func (l *Lock) linkBreakers(b *claimFile) (*claimFile, error) {
	path := l.breakersPath()
	for range 3 {
		err := l.publishClaim(b, path, b.info.ModTime)
		if err == nil {
			return b, nil
		}
		if errors.Is(err, errSlowCreate) {
			return nil, fmt.Errorf("%w (its own breakers' lock took too long to create)", errBreaking)
		}
		// A claim not found to publish is looked into as a refusal is:
		// a lost reply to a move that happened leaves ours at the path,
		// and a claim whose name went (a storm of processes through
		// sshfs met this once in a few CI runs, its cause not found)
		// publishes nothing, so that the break is given up after the
		// tries, and the next attempt makes a fresh claim.
		switch {
		case gone(err):
			// Not found for want of the directory itself (removed
			// under us): no waiting mends that, and no other breaker
			// is at work.
			if _, derr := l.cfg.fs.Lstat(l.dir); gone(derr) {
				return nil, err
			}
		case !errors.Is(err, fs.ErrExist) && !l.refusedAsTaken(err):
			return nil, err
		}
		s, ierr := l.inspect(path)
		switch {
		case gone(ierr) && linkRefused(err) && l.publish == publishLink:
			// Refused with nothing in the way: contention, or no
			// hard links here (when a lock file was in the way of
			// the first link).
			if ok, err := l.linksWork(b); err != nil {
				return nil, err
			} else if !ok {
				l.goPortable(b)
			}
			continue
		case gone(ierr):
			continue
		case ierr != nil:
			return nil, ierr
		case s.names(b.name):
			// A lost reply, or a forgery naming our fresh claim.
			if ok, err := l.isFileOf(s, b); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("%w (a file that is not ours names our claim)", errBreaking)
				}
				return nil, err
			}
			return b, nil
		case l.breakersBreakable(s):
			if p, err := l.removeBreakers(sameInstance(s)); p != nil || err != nil {
				return p, err
			}
		default:
			return nil, fmt.Errorf("%w (%s)", errBreaking, describeHolder(s, l.cfg.sep))
		}
	}
	return nil, errBreaking
}

// outwaitBreakers takes the breakers' lock for a forced break when one
// that looks live is in the way. A real breaker is done in milliseconds;
// one that still holds it, the same file and contents, after breakTTL was
// planted (kept fresh by whoever planted it), and is broken. Breaking a
// live breaker's lock at once would let that breaker go on to move
// whatever then stood at the lock path.
func (l *Lock) outwaitBreakers() (*claimFile, error) {
	path := l.breakersPath()
	first, err := l.inspect(path)
	if err != nil && !gone(err) {
		return nil, err
	}
	start := l.read().run // no one sets it: a wall clock stepped ahead cuts no wait short
	for l.read().run-start < breakTTL+time.Second {
		retry.Sleep(context.Background(), l.cfg.clock, 100*time.Millisecond, l.closing)
		select {
		case <-l.closing:
			return nil, ErrClosed
		default:
		}
		b, err := l.lockBreakers()
		if !errors.Is(err, errBreaking) {
			return b, err
		}
	}
	cur, err := l.inspect(path)
	if gone(err) {
		return l.lockBreakers()
	}
	if err != nil {
		return nil, err
	}
	if bytes.Equal(cur.contents, first.contents) && (cur.info.Ino == 0 || cur.info.SameFile(first.info)) {
		if p, err := l.removeBreakers(sameContents(cur)); p != nil || err != nil {
			return p, err
		}
	}
	return l.lockBreakers()
}

// removeBreakers removes another's breakers' lock, the instance at the
// breakers' path that match approves of (removeIf's contract), which its
// caller judged broken. The file at the path may be a live breaker's,
// linked in since the judgment, and its breaker may be past its last look:
// a removal that left the path free under it would let another take the
// breakers' lock and break beside it (docs/RELIABILITY.md). So a fresh
// breakers' lock of ours takes the file's place (swapIn): in one step
// where the filesystem swaps two names (Exchange, on a local disk), and
// elsewhere by a move aside and a publish of ours at once, before what
// came out is read, so that whoever then looks sees a live breaker. What
// came out is read under a name of our own. If it is the instance judged,
// or breakable all the same, it is removed and we hold the breakers' lock
// through our file, which is returned; if not, it is removed all the same
// and ours stays, to stand in for it until ours expires and the slop
// passes.
func (l *Lock) removeBreakers(match func(snapshot) bool) (*claimFile, error) {
	path := l.breakersPath()
	if mutated("breakers-move-aside") {
		_, err := l.removeIf(path, match, nil)
		return nil, err
	}
	p, err := l.newSwapClaim()
	if err != nil {
		return nil, err
	}
	// Our file must stand in for the other's as long as its breaker
	// may be at work, which a lease of ours that ran out while we paused
	// since making it would not: others may break ours once it has expired
	// and the slop has passed, and a breaker whose lease began just before
	// our swap may act until breakTTL after that. So, only within our own
	// lease: a pause past it between this look and the swap is a move past
	// every lease we had (docs/RELIABILITY.md), as a move aside would be.
	if l.breakLeaseOver(p) && !mutated("swap-past-lease") {
		l.dropOwn(p)
		return nil, nil // paused since making p: nothing done
	}
	// What we swap out and may not remove, ours stands in for until it
	// expires and the slop passes, blocking every breaker: so we look
	// again, just before the swap, rather than swap on a judgment made
	// before p was made (in crowds beside a dead breaker's L.break, a
	// live breaker's file, linked in meanwhile, came out of one swap in
	// thirty).
	if s, err := l.inspect(path); !mutated("swap-no-relook") && (err != nil || !match(s) && !l.breakersBreakable(s)) {
		l.dropOwn(p)
		if gone(err) || err == nil {
			return nil, nil
		}
		return nil, err
	}
	out, err := l.swapIn(p, path, match)
	if out == "" {
		l.dropOwn(p)
		return nil, err
	}
	// Our file stands at the breakers' path; what stood there is at
	// out, which no one else touches. What came out may not be what was
	// judged; if it is breakable all the same, it is broken.
	got, err := l.inspect(out)
	taken := func() bool { return err == nil && (match(got) || l.breakersBreakable(got)) }
	// Another remover's file, swapped in a moment before ours: if it took
	// the breakers' lock with it, it marks its file expired as soon as it
	// sees ours in its place (yieldSwapped), which is at its next look, or
	// at its give-up if it was past its last. Wait a little for that.
	for d := time.Millisecond; !taken() && err == nil && swappedIn(got) && d <= 16*time.Millisecond; d *= 2 {
		time.Sleep(d)
		got, err = l.inspect(out)
	}
	if taken() {
		// We took out no live breaker's file. If ours still stands at the
		// path, we hold the breakers' lock through it, for its lease,
		// and break as any breaker does. If not, another remover swapped
		// it out a moment after our swap, and waits a little to read it
		// (above): yieldSwapped marks ours long expired, so that it
		// judges ours broken and holds the breakers' lock in turn. A file
		// is marked only by its holder, after its last act under it, and
		// never given up by it once marked: a marked file at the path
		// could be swapped out and the path freed by anyone between its
		// maker's look at it and its move aside as it gave it up, so that
		// the move took a live breaker's file (the review of 5f238c0: two
		// holders; mutant give-up-marked-by-move, which marks ours and
		// gives it up, as since 4373c3a).
		if rerr := l.cfg.fs.Remove(out); rerr != nil && !gone(rerr) {
			l.cfg.logger.Warn("flock: removing a broken breakers' lock", "path", out, "err", rerr)
		}
		if mutated("give-up-marked-by-move") {
			f, _ := p.file()
			f.SetTimes(time.Unix(0, 0))
			l.unlockBreakers(p)
			return nil, nil
		}
		s, err := l.inspect(path)
		if err == nil {
			if ok, _ := l.isFileOf(s, p); ok {
				return p, nil
			}
			l.yieldSwapped(p, s)
		}
		// Where the look failed, p may yet stand there: it is left as it
		// is, unmarked, to be broken by its expiry.
		l.dropOwn(p)
		return nil, nil
	}
	if mutated("swap-back") && out == p.name {
		// As at cc0d523: the two swapped back, which pushes out whatever
		// stands at the path by then.
		if l.cfg.fs.Exchange(p.name, path) == nil {
			l.cfg.fs.Remove(p.name)
		}
		p.close()
		return nil, nil
	}
	// What came out is not ours to remove, or not known to be: a live
	// breaker's, linked in since the judgment. Ours stays in its place
	// and stands in for it, and what came out is removed; its breaker
	// finds a file not its own at its last look, and gives up its break.
	// Ours is broken only once it has expired and the slop has passed,
	// which outlasts that breaker's lease: it began before our swap,
	// within our lease. Nothing is ever swapped back: a swap back pushes
	// out whatever stands at the path by then, which a giver's move aside
	// of ours may have let another breaker take, and the file put back
	// stood in for that one by its expiry alone, which a proof of its
	// maker's death cuts short (six reviews of the swap back, the last
	// with a window left open; docs/RELIABILITY.md). The price is time:
	// ours blocks breakers until swapTTL and the slop have passed.
	if rerr := l.cfg.fs.Remove(out); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing a breakers' lock swapped out", "path", out, "err", rerr)
	}
	l.dropOwn(p) // its name, where it was published by a link; ours stays at the path
	if gone(err) {
		err = nil
	}
	return nil, err
}

// swapIn puts p, a fresh breakers' lock of ours, at the breakers' path
// in place of the file there, and returns the name that file came out
// under: "", with the error if any, when nothing was done. Where names
// can be swapped in one step (Exchange, on a local disk or an overlay:
// fsys.Swapper) the path is never free, and the file comes out under p's
// name. Elsewhere (NFS, FUSE, SMB, or Exchange refused) the file is moved
// aside to a fresh name and p published at once, before what came out is
// read: the path is free only between those two calls, and a breaker
// whose file came out finds ours standing in for it, as after a swap,
// rather than a free path that another could take while it still breaks
// (the review of cc3d6b9).
// If another took the path in that moment, or ours could not be
// published, what came out stays out all the same (dropMovedOut), and
// nothing is done.
func (l *Lock) swapIn(p *claimFile, path string, match func(snapshot) bool) (string, error) {
	if l.swaps {
		err := l.cfg.fs.Exchange(p.name, path)
		switch {
		case err == nil:
			return p.name, nil
		case gone(err):
			return "", nil // nothing there any more
		case !errors.Is(err, errors.ErrUnsupported):
			return "", err
		}
	}
	out := l.freshName()
	if err := l.cfg.fs.Rename(path, out); err != nil {
		if !gone(err) {
			return "", err
		}
		// Nothing there, or a lost reply to a rename that happened.
		if _, lerr := l.cfg.fs.Lstat(out); lerr != nil {
			return "", nil
		}
	}
	err := l.publishClaim(p, path, p.info.ModTime)
	if err != nil && linkRefused(err) && l.publish == publishLink {
		// Refused with nothing in the way: a filesystem without hard
		// links, which this Lock had not learned yet (a first link of
		// the lock file refused reads as taken). Learn it, and publish
		// the portable way, rather than leave the path free (the
		// review of c7ffa50).
		if _, ierr := l.inspect(path); gone(ierr) {
			if ok, lerr := l.linksWork(p); lerr == nil && !ok {
				l.goPortable(p)
				err = l.publishClaim(p, path, p.info.ModTime)
			}
		}
	}
	if err != nil && !errors.Is(err, errSlowCreate) {
		// A lost reply to a publish that happened?
		if s, ierr := l.inspect(path); ierr == nil {
			if ours, _ := l.isFileOf(s, p); ours {
				err = nil
			}
		}
	}
	if err == nil {
		return out, nil
	}
	l.dropMovedOut(out, path, match)
	if errors.Is(err, fs.ErrExist) || l.refusedAsTaken(err) || errors.Is(err, errSlowCreate) {
		err = nil // another took the path in the moment it was free
	}
	return "", err
}

// dropMovedOut disposes of what swapIn moved out of the breakers' path
// to out when it could not stand our file in its place. A regular file
// is removed, whatever it is: the file judged broken, or a live
// breaker's, linked in since the judgment, which is never put back, so
// that a breaker that finds its own file at the path knows it stood there
// throughout (cc3d6b9). Anything else (a directory planted there) is put
// back if the path is free, as removeIf does.
func (l *Lock) dropMovedOut(out, path string, match func(snapshot) bool) {
	got, err := l.inspect(out)
	if errors.Is(err, ErrNotRegular) || err == nil && !match(got) && mutated("breakers-put-back") {
		if rerr := l.restore(out, path, errors.Is(err, ErrNotRegular)); rerr != nil {
			l.cfg.logger.Warn("flock: could not restore what was moved out of the breakers' path", "path", out, "err", rerr)
		}
		return
	}
	if rerr := l.cfg.fs.Remove(out); rerr != nil && !gone(rerr) {
		l.cfg.logger.Warn("flock: removing a breakers' lock moved aside", "path", out, "err", rerr)
	}
}

// yieldSwapped is called where c, a breakers' lock we hold, turned out to
// have been swapped out: cur, not c, stands at the breakers' path. If c is
// a file we swapped in (removeBreakers), it is marked long expired,
// through its descriptor, so that the remover that swapped it out, which
// waits a moment to read it, finds it broken and holds the breakers' lock
// in turn, rather than leave its own standing in for ours until it
// expires (the second review of af307b4). We do nothing more under c:
// the caller gives up its break, or has finished it, and our lease on c
// is over, so that a give-up never moves c aside. Where every process
// swaps, c left the path with a remover's swap, which nobody undoes, so
// it never stands there marked; a process that moves aside (a mixed
// directory, docs/RELIABILITY.md) removes it, and until cc3d6b9 could put
// it back, to be broken at once, under nobody (the third review of
// af307b4). Only a look that succeeded and showed another file says c is
// gone: one that failed says nothing.
func (l *Lock) yieldSwapped(c *claimFile, cur snapshot) {
	if !c.swap || mutated("swap-no-yield") {
		return
	}
	if ours, err := l.isFileOf(cur, c); err != nil || ours {
		return
	}
	// Where the filesystem keeps no identity (sshfs), a time change
	// through a descriptor may go by path, onto whatever stands there
	// now, and sshfs writes a time of 0 as "now": there the file is not
	// marked (the review of c7ffa50), and the remover waiting for the
	// mark leaves its own to stand in until it expires, a stall. Our
	// lease on c ends here all the same.
	if l.ident == identityYes {
		f, _ := c.file()
		if err := f.SetTimes(time.Unix(0, 0)); err != nil {
			l.cfg.logger.Debug("flock: marking a swapped-out breakers' lock expired", "path", c.name, "err", err)
		}
	}
	c.info.ModTime = time.Unix(0, 0)
}

// breakersBreakable reports whether the breakers' lock s may be broken:
// it expired; it lies so far ahead that no breaker wrote it (farAheadMax);
// it lies far ahead and this Lock's process has seen it unchanged for as
// long as a breaker's lease and the slop (farSeenFor); or (only with
// WithDeadOwnerBreak) its holder is a process of this host known to be
// gone. Called with l.mu held.
func (l *Lock) breakersBreakable(s snapshot) bool {
	far := breakTTL + l.breakSlop()
	switch ahead := l.aheadBy(s.info.ModTime); {
	case l.expiredBy(s.info, l.breakSlop()):
		return true
	case ahead > far+farAheadMax:
		return true
	case ahead > far && (mutated("far-breakers-at-once") || l.farSeenFor(s, far)):
		return true
	}
	return l.cfg.deadOwnerBreak && l.deadHolder(s.contents)
}

// A breakers' lock whose expiry lies further ahead than a breaker writes
// by this Lock's time was planted, or written by a live breaker whose
// clock runs ahead of the filesystem's by more than the slop: a Lock
// writes its expiries from the later of the filesystem's clock and its
// own (timebase.go, fsNow), so that Locks on a mount that stamps with its
// client's clock judge them right. Such a breaker's lease still ends
// breakTTL after it last set its expiry, by its own clocks
// (breakLeaseOver), and every such change gives the file new times. So
// the file is broken once it has been seen unchanged (the same contents,
// times and, where reported, inode) for breakTTL and the slop, by a clock
// that no one sets: it was there before the first sighting, and the slop
// covers a cached view that showed it unchanged a while after it changed.
// Breaking it at once, as before, let a breaker whose clock ran a minute
// fast have company (simulation seed 15001001).
//
// Its change time cannot say the same at first sight: on a mount that
// stamps with a clock other than the one this Lock learned (a gateway, a
// client's), it may lie behind, and a live breaker's lock would be broken
// (the eighth review). Sightings live in a process, so a process that
// tries once and exits never breaks such a file, and each acquisition by
// a new process waits up to outwaitMax beside it for its breaker: that
// lasts until it expires, farAheadMax at most, or a process that waits
// longer breaks it.
type sighting struct {
	s  snapshot
	at time.Duration // the clock's reading at the first sighting (farSeenFor)
}

// farAheadMax is how much further ahead than a breaker of a right clock
// writes a breakers' lock may lie and still be a live breaker's: one
// whose clock runs up to an hour fast. One further ahead was planted (or
// its breaker's clock is off by more than any the Lock allows for) and is
// broken at once, so that a planted one delays others by about an hour
// at most.
const farAheadMax = time.Hour

// farSeenFor reports whether the breakers' lock s, far ahead, has been
// seen unchanged for d; it starts the count on a first sighting of it
// (another instance's sighting at the path is replaced). The
// Locks of a process that keep the system's clocks share their sightings
// (farSightings), counted by Go's monotonic clock, which stops at most
// while the machine sleeps: a Lock made for each acquisition, as guard
// makes them, counts on from those before it. A Lock of other clocks
// keeps its own, by its run clock. Called with l.mu held.
func (l *Lock) farSeenFor(s snapshot, d time.Duration) (long bool) {
	if !l.sharesSightings() {
		l.farBreakers, long = sighted(l.farBreakers, s, l.read().run, d)
		return long
	}
	farSightings.Lock()
	defer farSightings.Unlock()
	if farSightings.m == nil {
		farSightings.m = map[string]*sighting{}
	}
	path := l.breakersPath()
	farSightings.m[path], long = sighted(farSightings.m[path], s, sinceMonoStart(), d)
	return long
}

// sighted returns the sighting to keep once s is seen at now, given the
// one kept before (nil for none), and whether s has stood unchanged for d
// since: the same instance goes on counting, another starts anew.
func sighted(kept *sighting, s snapshot, now, d time.Duration) (*sighting, bool) {
	if kept != nil && sameInstance(kept.s)(s) {
		return kept, now-kept.at >= d
	}
	return &sighting{s: s, at: now}, false
}

// sharesSightings reports whether the Lock keeps the system's clocks, and
// so shares its sightings of far-ahead breakers' locks with the process's
// other such Locks.
func (l *Lock) sharesSightings() bool {
	return l.cfg.clock == retry.SystemClock && l.cfg.runClock == nil
}

// farSightings are the sightings of far-ahead breakers' locks that the
// Locks of this process on the system's clocks share, by breakers' path.
var farSightings struct {
	sync.Mutex
	m map[string]*sighting
}

// sinceMonoStart reads the process's monotonic clock; a test may stand
// time passing on it.
var sinceMonoStart = func(start time.Time) func() time.Duration {
	return func() time.Duration { return time.Since(start) }
}(time.Now())

// breakLeaseOver reports whether our breakers' lock b's lease may be
// over: by the upper bound on the filesystem's clock, or its lease (breakTTL,
// or swapTTL) after its expiry was worked out, by the run clock or the wall clock,
// whichever counts more. Others break one that lies far ahead once it
// stood unchanged that long and the slop by their clocks (farSeenFor); a
// wall clock that ran fast when the expiry was written, and was stepped
// back since, would otherwise stretch the lease by the upper bound to the
// far expiry. Where the run clock stops while the machine sleeps (Go's
// monotonic reading), a suspend with such a step would hide from both
// clocks: there a lease across which the clocks came to disagree is over
// (the ninth review).
func (l *Lock) breakLeaseOver(b *claimFile) bool {
	if l.leaseOver(b.info.ModTime) {
		return true
	}
	age, agree := b.timed.since(l.read())
	return age >= b.life || !agree && l.runStops()
}

// unlockBreakers removes the breakers' lock if it is still ours, and then
// the file it was linked from. One that a remover swapped out (its file
// stands there in ours' place) is gone for good: a remover never swaps
// back, so there is nothing to wait for.
func (l *Lock) unlockBreakers(b *claimFile) {
	defer l.dropOwn(b)
	path := l.breakersPath()
	s, err := l.inspect(path)
	if err != nil {
		return
	}
	if ok, err := l.isFileOf(s, b); err != nil || !ok {
		if err == nil {
			l.yieldSwapped(b, s) // done: a remover that swapped it out may hold
		}
		return // broken by another, or swapped out: not ours to touch
	}
	if l.breakLeaseOver(b) {
		return // past its lease: another breaker may be at work; it expires
	}
	// What the move aside takes, if not ours, stays out (removeIf): a
	// remover's file swapped in since the look stood in for ours alone,
	// and a breaker's linked since a remover took ours out finds it gone
	// at its next look.
	if _, err := l.removeIf(path, func(m snapshot) bool {
		ok, _ := l.isFileOf(m, b)
		return ok
	}, nil); err != nil {
		l.cfg.logger.Warn("flock: removing the breakers' lock", "path", path, "err", err)
	}
}

// blockedBy says why an expired lock s could not be broken: the file
// whose move was refused (the lock file, or the breakers' lock) and its
// owner.
func (l *Lock) blockedBy(s snapshot, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	what, uid := "the lock", s.info.Uid
	var le *os.LinkError
	if errors.As(err, &le) && (le.Old == l.breakersPath() || le.Op == "exchange" && le.New == l.breakersPath()) {
		what, uid = "the breakers' lock beside it", fsys.NoUID
		if i, lerr := l.cfg.fs.Lstat(l.breakersPath()); lerr == nil {
			uid = i.Uid
		}
	}
	if uid != fsys.NoUID {
		return fmt.Errorf("the lock expired, but %s is owned by uid %d: only that user or root can break it: %w", what, uid, err)
	}
	return fmt.Errorf("the lock expired, but this user may not break %s: %w", what, err)
}

// describeHolder says who holds a lock or breakers' lock, quoting what
// came from the file.
func describeHolder(s snapshot, sep string) string {
	if d, ok := claim.Parse(s.contents, sep); ok {
		return fmt.Sprintf("pid %d on host %q, expiring %v", d.PID, d.Hostname, s.info.ModTime)
	}
	if name, ok := bytes.CutSuffix(bytes.TrimSpace(s.contents), []byte(swapMark)); ok {
		if d, ok := claim.Parse(name, sep); ok {
			return fmt.Sprintf("pid %d on host %q, removing a stale breakers' lock, expiring %v", d.PID, d.Hostname, s.info.ModTime)
		}
	}
	return fmt.Sprintf("an unparseable file expiring %v", s.info.ModTime)
}

// deadHolder reports, for WithDeadOwnerBreak, whether contents name a
// claim of this host whose process no longer runs. A claim that carries
// another namespace's tag is never dead here: its pid means nothing to
// us. One without a tag (flufl.lock's) is judged by hostname and pid,
// as the option's user accepted.
func (l *Lock) deadHolder(contents []byte) bool {
	name := string(bytes.TrimSpace(contents))
	d, ok := claim.Parse([]byte(name), l.cfg.sep)
	if !ok || d.Hostname != l.cfg.hostname || d.PID == l.pid {
		return false
	}
	if tag, ok := claim.TagOf(name, l.cfg.sep); ok && tag != l.tag {
		return false
	}
	return !l.cfg.fs.ProcessAlive(d.PID)
}

// provenDead reports whether name, a claim-shaped name of this lock, was
// made by a process that is proven gone: it carries our namespace tag
// (so its pid means what it means here), its hostname is ours, and no
// process with its pid runs. flufl.lock's claims carry no tag and are
// never proven dead: their owners may run in another pid namespace.
func (l *Lock) provenDead(name string) bool {
	d, ok := claim.Parse([]byte(name), l.cfg.sep)
	if !ok || d.Hostname != l.cfg.hostname || d.PID == l.pid {
		return false
	}
	tag, ok := claim.TagOf(name, l.cfg.sep)
	if mutated("sweep-any-pid-ns") {
		return !l.cfg.fs.ProcessAlive(d.PID)
	}
	return ok && tag == l.tag && !l.cfg.fs.ProcessAlive(d.PID)
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

// sweepLocked removes the claims, aside names, probes and fencing
// temporaries of this lock that processes proven dead left behind (see
// provenDead), and a breakers' lock whose breaker is proven dead. Files
// whose makers may live are left alone: a flufl.lock waiter whose claim
// vanishes waits until its timeout.
func (l *Lock) sweepLocked() {
	if l.tag == 0 {
		return
	}
	if s, err := l.inspect(l.breakersPath()); err == nil {
		var p *claimFile
		switch {
		case l.provenDead(string(bytes.TrimSpace(s.contents))):
			// Its breaker is gone, whatever its times: those read by
			// path may be a cache's, older than the file moved aside
			// shows (sshfs; seed 50014552). Its contents name a claim
			// of its breaker's own.
			p, _ = l.removeBreakers(sameContents(s))
		case l.expiredBy(s.info, l.breakSlop()):
			p, _ = l.removeBreakers(sameInstance(s))
		}
		if p != nil {
			l.unlockBreakers(p) // nothing to break: the lock is ours
		}
	}
	names, err := l.cfg.fs.ReadDir(l.dir)
	if err != nil {
		l.cfg.logger.Debug("flock: sweep", "dir", l.dir, "err", err)
		return
	}
	var current string
	if s, err := l.inspect(l.path); err == nil {
		current, _ = claim.Removable(s.contents, l.base, l.cfg.sep)
	}
	for _, name := range names {
		if name == current || !claim.IsClaimOf(name, l.base, l.cfg.sep) || !l.provenDead(name) {
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
