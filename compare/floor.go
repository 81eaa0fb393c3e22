//go:build linux

package compare

import (
	"errors"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The floors of nfsflock's own protocol: the system calls that its safety
// rules require of one uncontended cycle on a local filesystem, issued
// raw, with no library code around them. They are not baselines to beat
// (that is [RawCycle]) but measures of what the rules cost, against which
// targets 2 and 3 of issue 10 can be judged (docs/BENCHMARKS.md, What the
// rules cost). Most keep nfsflock's named claim, a file under a fresh name
// that the lock file's contents name, as flufl.lock's do; UnnamedCycle
// measures the rules apart from it, and [KeptClaim.NFSCycle],
// [KeptClaim.FluflCycle] and [KeptClaim.LinkOnlyCycle] measure a link(2)
// lock without them.
//
// Beyond RawCycle's calls, the rules add: a look at the lock file after
// the link (a hard link planted over the claim), a look at the breakers'
// lock (a breaker at work may yet move the file just linked), a look
// before the release (a lock file that is not ours stays as it is), and a
// release that moves the lock file aside and looks at what it moved
// before removing it (a releaser paused past its lease puts back another
// holder's file instead of removing it). On a filesystem that answers
// lstat from the file itself, each look is one lstat that compares the
// device and inode with the claim's, which the claim's open descriptor
// pins.

// errNotOurs is a floor's error when a look finds another file.
var errNotOurs = errors.New("floor: the file looked at is not our claim")

// SafeCycle is RawCycle with the looks and the release of nfsflock's
// rules: a fresh claim each cycle, as a new Lock makes (guard's way).
func SafeCycle(lock, claim string, lifetime time.Duration) error {
	fd, err := unix.Open(claim, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(claim)); err != nil {
		return err
	}
	k := KeptClaim{fd: fd, claim: claim, lock: lock, aside: claim + "-aside"}
	if err := k.Cycle(lifetime); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(claim, &st); err != nil {
		return err
	}
	if st.Dev != k.st.Dev || st.Ino != k.st.Ino {
		return errNotOurs
	}
	return unix.Unlink(claim)
}

// KeptClaim is the floor of a cycle that keeps its claim file open and
// in place from one acquisition to the next (target 2's suggestion), with
// every look of SafeCycle: what a reused Lock could come down to.
type KeptClaim struct {
	fd                 int
	claim, lock, aside string
	st                 unix.Stat_t
}

// NewKeptClaim creates the claim that Cycle keeps; Close removes it.
func NewKeptClaim(lock, claim string) (*KeptClaim, error) {
	fd, err := unix.Open(claim, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := unix.Write(fd, []byte(claim)); err != nil {
		unix.Close(fd)
		unix.Unlink(claim)
		return nil, err
	}
	return &KeptClaim{fd: fd, claim: claim, lock: lock, aside: claim + "-aside"}, nil
}

// Close closes and removes the claim.
func (k *KeptClaim) Close() error {
	unix.Close(k.fd)
	return unix.Unlink(k.claim)
}

// RenamedCycle is Cycle under a fresh claim name each time, as the
// security rules ask (a name that has been the lock file's contents is
// public): the claim is renamed without replacing, and its contents
// rewritten in place, which the names' equal lengths allow.
func (k *KeptClaim) RenamedCycle(lifetime time.Duration, next string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, k.claim, unix.AT_FDCWD, next, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	k.claim = next
	if _, err := unix.Pwrite(k.fd, []byte(next), 0); err != nil {
		return err
	}
	return k.Cycle(lifetime)
}

// Cycle acquires and releases the lock once: set the expiry through the
// descriptor and read it back, link, look at the breakers' lock and at the
// lock file; then look again, move the lock file aside, look at what was
// moved, and remove it.
func (k *KeptClaim) Cycle(lifetime time.Duration) error {
	if err := k.setTimes(lifetime); err != nil {
		return err
	}
	if err := unix.Link(k.claim, k.lock); err != nil {
		return err
	}
	return k.looksAndRelease(k.aside, false)
}

// setTimes sets the claim's times to the expiry through its descriptor,
// and reads back its identity and times.
func (k *KeptClaim) setTimes(lifetime time.Duration) error {
	if err := setExpiry(k.fd, lifetime); err != nil {
		return err
	}
	return unix.Fstat(k.fd, &k.st)
}

// looksAndRelease looks at the breakers' lock and at the lock file (after
// the link, and before the release), moves the lock file aside to aside,
// looks at what it moved, and removes it, unless keep says to leave it
// there.
func (k *KeptClaim) looksAndRelease(aside string, keep bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(k.lock+".break", &st); !errors.Is(err, unix.ENOENT) {
		return errors.New("floor: a breakers' lock is in the way")
	}
	for _, look := range []string{k.lock, k.lock} { // after the link; before the release
		if err := k.ours(look); err != nil {
			return err
		}
	}
	if err := unix.Rename(k.lock, aside); err != nil {
		return err
	}
	if err := k.ours(aside); err != nil {
		return err
	}
	if keep {
		return nil
	}
	return unix.Unlink(aside)
}

// ours looks at path with one lstat: is it the claim's file?
func (k *KeptClaim) ours(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Dev != k.st.Dev || st.Ino != k.st.Ino || st.Mtim != k.st.Mtim {
		return errNotOurs
	}
	return nil
}

// UnnamedCycle is SafeCycle with a claim that has no name: created with
// O_TMPFILE in the lock's directory and linked to the lock path through
// its descriptor (by its name in /proc/self/fd where linking the
// descriptor itself needs a privilege the process lacks), so that no claim
// name is created, planted, checked or removed. Every look and the release
// stay as they are. It is a design nfsflock does not use (its claims are
// named, as flufl.lock's are): a measure of what the rules themselves
// cost, apart from the named claim (docs/BENCHMARKS.md).
func UnnamedCycle(lock, contents string, lifetime time.Duration) error {
	fd, err := unix.Open(filepath.Dir(lock), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(contents)); err != nil {
		return err
	}
	k := KeptClaim{fd: fd, lock: lock, aside: contents + "-aside"}
	if err := k.setTimes(lifetime); err != nil {
		return err
	}
	// Linking a descriptor itself needs CAP_DAC_READ_SEARCH; its name
	// in /proc does not.
	if err := unix.Linkat(fd, "", unix.AT_FDCWD, lock, unix.AT_EMPTY_PATH); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, lock, unix.AT_SYMLINK_FOLLOW)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return k.looksAndRelease(k.aside, false)
}

// NFSCycle is about the least that a lock built on link(2) can do and
// stay NFS-safe, with lifetimes that others may break, with the claim kept
// open from cycle to cycle: set the expiry through the descriptor, link,
// count the claim's links through the descriptor (two: the link took,
// even if its reply was lost), then, before the release, read the lock
// file through a fresh descriptor (a lock broken since and taken by
// another is not ours to unlink), and unlink it. It makes none of the
// other looks of nfsflock's rules, and has no fresh claim name per
// acquisition.
func (k *KeptClaim) NFSCycle(lifetime time.Duration) error {
	if err := setExpiry(k.fd, lifetime); err != nil {
		return err
	}
	if err := unix.Link(k.claim, k.lock); err != nil {
		return err
	}
	if err := unix.Fstat(k.fd, &k.st); err != nil {
		return err
	}
	if k.st.Nlink != 2 {
		return errNotOurs
	}
	if err := k.readsOurs(); err != nil {
		return err
	}
	return unix.Unlink(k.lock)
}

// FluflCycle is flufl.lock's own uncontended lock() and unlock() on a
// claim kept in place (flufl.lock writes a new claim each time; this one
// is neither rewritten, created nor removed): lock() sets the claim's
// times, links, and sets them again; unlock() asks is_locked (set the
// claim's times, count the lock file's links by path, read the lock
// file), then unlinks the lock file. flufl.lock sets times by path.
func (k *KeptClaim) FluflCycle(lifetime time.Duration) error {
	touch := func() error {
		ts := unix.NsecToTimespec(time.Now().Add(lifetime).UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, k.claim, []unix.Timespec{ts, ts}, 0)
	}
	if err := touch(); err != nil {
		return err
	}
	if err := unix.Link(k.claim, k.lock); err != nil {
		return err
	}
	if err := touch(); err != nil {
		return err
	}
	if err := touch(); err != nil { // is_locked
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(k.lock, &st); err != nil {
		return err
	}
	if st.Nlink != 2 {
		return errNotOurs
	}
	if err := k.readsOurs(); err != nil {
		return err
	}
	return unix.Unlink(k.lock)
}

// readsOurs reads the lock file through a descriptor of its own and
// compares its contents with the claim's name.
func (k *KeptClaim) readsOurs() error {
	fd, err := unix.Open(k.lock, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var buf [512]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return err
	}
	if string(buf[:n]) != k.claim {
		return errNotOurs
	}
	return nil
}

// LinkOnlyCycle is the least that any lock built on link(2) can do: link
// the kept claim to the lock path and unlink it again, with no expiry, no
// look and no check that the link took, so nothing that makes a lock
// NFS-safe or safe against a paused holder. It bounds target 2 of issue
// 10 from below for every link(2) design, not only nfsflock's.
func (k *KeptClaim) LinkOnlyCycle() error {
	if err := unix.Link(k.claim, k.lock); err != nil {
		return err
	}
	return unix.Unlink(k.lock)
}

// MovedCycle is RenamedCycle with one name fewer: the kept file is
// published by a rename that refuses to replace (as nfsflock does where
// hard links are refused) rather than linked, and the release moves it
// aside to next, where it waits, with one name, for the next cycle.
func (k *KeptClaim) MovedCycle(lifetime time.Duration, next string) error {
	if _, err := unix.Pwrite(k.fd, []byte(next), 0); err != nil {
		return err
	}
	if err := k.setTimes(lifetime); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, k.claim, unix.AT_FDCWD, k.lock, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	if err := k.looksAndRelease(next, true); err != nil {
		return err
	}
	k.claim = next
	return nil
}
