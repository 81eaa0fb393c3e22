package flock

import (
	"bytes"
	"fmt"
	"time"

	"github.com/nfsflock/nfsflock/internal/claim"
)

// State is what can be inferred about a lock file, as in flufl.lock's
// LockState. Where hosts share a filesystem, some states cannot be told
// apart; the policy on what to do about them is the caller's. [Status]
// says more, from the same read.
type State int

// The states of a lock file, with flufl.lock's names.
const (
	// Unlocked is the State when there is no lock file.
	Unlocked State = iota + 1

	// Ours is the State when this Lock holds the lock and it has not
	// expired.
	Ours

	// OursExpired is the State when this Lock holds the lock but its
	// lifetime has passed; another process may break it once the clock
	// slop has passed too.
	OursExpired

	// Stale is the State when the holder's hostname is ours and no process
	// with its pid runs here. That does not prove the holder gone: one in
	// another pid namespace under this hostname (a container), or on
	// another machine that uses this hostname, may be running and holding
	// the lock. [WithDeadOwnerBreak] never breaks the lock of a claim that
	// says it comes from another pid namespace, but flufl.lock's claims do
	// not say.
	Stale

	// TheirsExpired is the State when a running process of this host holds
	// the lock and its lifetime has passed.
	TheirsExpired

	// Unknown is the State when another host holds the lock, or a running
	// process of this host holds it and it has not expired, or the lock
	// file's contents name no holder.
	Unknown
)

var stateNames = [...]string{
	Unlocked:      "unlocked",
	Ours:          "ours",
	OursExpired:   "ours_expired",
	Stale:         "stale",
	TheirsExpired: "theirs_expired",
	Unknown:       "unknown",
}

// String returns flufl.lock's name for the state, such as "ours_expired".
func (s State) String() string {
	if s >= Unlocked && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Details is what a lock file says of its holder, as in flufl.lock's
// details. Anyone who can write to the directory can write a lock file:
// it is a claim, not a proof.
type Details struct {
	Hostname string // the holder's host, as it named itself
	PID      int    // the holder's process id on that host
	LockFile string // the lock path, as the holder named it
}

// Status is what one read of the lock file shows, as this Lock judges it.
// [Lock.Inspect] returns it.
type Status struct {
	// At is when the lock file was read, by the Lock's clock (see
	// [WithClock]). Expired, Breakable and State are judged as of then.
	At time.Time

	// State is flufl.lock's summary of what follows.
	State State

	// Exists reports whether there is a lock file. If not, State is
	// Unlocked and the fields below are zero.
	Exists bool

	// Ours reports whether the lock file is this Lock's own: it names this
	// Lock's claim and, where the filesystem reports file identity, it is
	// that claim's very file.
	Ours bool

	// Holder is what the lock file says of its holder, or nil if its
	// contents name no claim: a file not written by a lock, or one being
	// written.
	Holder *Details

	// Claim is the holder's claim file, as the lock file names it: its
	// contents without surrounding white space. It is "" when Holder is
	// nil.
	Claim string

	// Expiry is when the lock expires: the lock file's modification time,
	// as the holder set it, in the filesystem's time (see Time base in
	// the package doc) or, from flufl.lock and from hosts without a usable
	// filesystem time, in the holder's.
	Expiry time.Time

	// Expired reports whether Expiry had passed at At, by the
	// filesystem's clock: for our own lock at the earliest the Lock's
	// bounds on that clock allow, for another's at the latest, and a
	// second or two later where Expiry falls on a whole second that a
	// mount may have cut (see Clock slop in the package doc).
	Expired bool

	// ClockOffset is the filesystem's clock minus the Lock's clock, as
	// the Lock measured it from the times the filesystem stamped on its
	// own files, or 0 where it found no usable filesystem time and judges
	// by its own clock.
	ClockOffset time.Duration

	// FarAhead reports whether Expiry lies further ahead of the
	// filesystem's now than this Lock's lifetime and the clock slop: a
	// lock written by a host whose clock was far ahead, after a clock
	// jumped back, or by a holder with a much longer lifetime. It is not
	// broken before its expiry; Break with force removes it.
	FarAhead bool

	// Breakable reports whether this Lock would break the lock file it
	// read: it is not ours, and either its expiry and the clock slop had
	// passed at At, or, with [WithDeadOwnerBreak], its holder is a process
	// of this host that no longer runs. A waiting Acquire, TryAcquire and
	// Break(false) break such a lock, unless another process is breaking it
	// at that moment.
	Breakable bool

	// Local reports whether the holder named this Lock's hostname, so that
	// Alive says something.
	Local bool

	// Alive reports whether the holder is Local and a process with its pid
	// runs on this host (this process included). A holder in another pid
	// namespace under the same hostname, a container, may run although
	// Alive is false.
	Alive bool
}

// Inspect reads the lock file once and reports what that read shows:
// whether there is a lock file and whether it is ours, who holds it, when
// it expires, and whether this Lock would break it. No lock file is not an
// error: then Status.Exists is false. Inspect changes nothing at the lock
// path; a Lock that has written nothing yet writes and removes a file of
// its own beside it, to learn the filesystem's clock (see Time base in the
// package doc).
//
// It fails with [ErrClosed] after Close, and otherwise with the error of
// the read: one that matches [ErrNotRegular] when something other than a
// regular file is at the lock path.
func (l *Lock) Inspect() (Status, error) {
	st, _, err := l.status("inspect")
	return st, err
}

// status is Inspect for the method op, which also returns the size of the
// lock file's contents.
func (l *Lock) status(op string) (Status, int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Status{}, 0, l.err(op, ErrClosed)
	}
	s, err := l.inspect(l.path)
	now := l.now()
	l.learnTime()
	offset, _ := l.clockOffset()
	if gone(err) {
		return Status{At: now, State: Unlocked, ClockOffset: offset}, 0, nil
	}
	if err != nil {
		return Status{}, 0, l.err(op, err)
	}
	ours, err := l.mine(s)
	if err != nil {
		return Status{}, 0, l.err(op, err)
	}
	expired := l.expiredBy(s.info, 0)
	if ours {
		expired = l.leaseOver(s.info.ModTime)
	}
	st := Status{
		At:          now,
		Exists:      true,
		Ours:        ours,
		Expiry:      s.info.ModTime,
		Expired:     expired,
		ClockOffset: offset,
		FarAhead:    l.aheadBy(s.info.ModTime) > l.lifetime+l.cfg.slop+roundedUp(s.info.ModTime),
	}
	if d, ok := claim.Parse(s.contents, l.cfg.sep); ok {
		st.Holder = &Details{Hostname: d.Hostname, PID: d.PID, LockFile: d.LockFile}
		st.Claim = string(bytes.TrimSpace(s.contents))
		st.Local = d.Hostname == l.cfg.hostname
		st.Alive = st.Local && (d.PID == l.pid || l.cfg.fs.ProcessAlive(d.PID))
	}
	st.Breakable = !ours && l.breakable(s)
	st.State = st.state()
	return st, len(s.contents), nil
}

// state is flufl.lock's summary of st.
func (st Status) state() State {
	switch {
	case !st.Exists:
		return Unlocked
	case st.Ours && st.Expired:
		return OursExpired
	case st.Ours:
		return Ours
	case !st.Local:
		return Unknown
	case !st.Alive:
		return Stale
	case st.Expired:
		return TheirsExpired
	}
	return Unknown
}

// State infers the state of the lock file; see [State]. It is
// [Lock.Inspect]'s State, and fails as Inspect does.
func (l *Lock) State() (State, error) {
	st, _, err := l.status("state")
	return st.State, err
}

// Details reads the holder's hostname, pid and lock path from the lock
// file. It returns [ErrNotLocked] if there is no lock file or its
// contents name no claim, and fails otherwise as [Lock.Inspect] does.
func (l *Lock) Details() (Details, error) {
	st, size, err := l.status("details")
	switch {
	case err != nil:
		return Details{}, err
	case !st.Exists:
		return Details{}, l.err("details", ErrNotLocked)
	case st.Holder == nil:
		return Details{}, l.err("details", fmt.Errorf("%w: the lock file's contents (%d bytes) are not a claim", ErrNotLocked, size))
	}
	return *st.Holder, nil
}

// Expiration returns the time the lock expires, which is the lock file's
// modification time. It returns [ErrNotLocked] if there is no lock file,
// and fails otherwise as [Lock.Inspect] does.
func (l *Lock) Expiration() (time.Time, error) {
	st, _, err := l.status("expiration")
	switch {
	case err != nil:
		return time.Time{}, err
	case !st.Exists:
		return time.Time{}, l.err("expiration", ErrNotLocked)
	}
	return st.Expiry, nil
}

// roundedUp is how much later than now plus its lifetime an expiry may lie
// because it was rounded up to the second, or to two, where the filesystem
// cuts file times so (expiryIn): up to two seconds, if it has no fraction.
func roundedUp(expiry time.Time) time.Duration {
	if expiry.Nanosecond() == 0 {
		return 2 * time.Second
	}
	return 0
}
