package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/retry"
)

// breakerLifetime is the lifetime of the lock that a break takes for a
// moment before it releases it: short, in case nfsflock dies in between.
const breakerLifetime = time.Second

// breakVerb removes an expired lock: nfsflock break [--force] LOCKFILE.
func breakVerb(args []string, stdout, stderr io.Writer) (int, error) {
	flags := newFlagSet("break")
	force := flags.Bool("force", false, "")
	var slop time.Duration
	durationVar(flags, &slop, flock.DefaultClockSlop, "clock-slop")
	pos, err := parseInterleaved(flags, args)
	if err != nil {
		return exitUsage, err
	}
	path, err := lockPathArg("break", pos)
	if err != nil {
		return exitUsage, err
	}
	l, err := newLock(path, flock.WithClockSlop(slop), flock.WithLifetime(breakerLifetime))
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()
	var b lockBreaker = stopgapBreaker{l, slop}

	// A lock refreshed or taken anew between the look and the break is left
	// alone; look again a few times before giving up.
	for range 3 {
		r, err := readReport(l, slop, time.Now)
		if err != nil {
			return exitFailed, err
		}
		if !r.Locked {
			fmt.Fprintf(stdout, "%s: not locked\n", r.Path)
			return exitOK, nil
		}
		if !r.Breakable && !*force {
			hint := ""
			if r.State == flock.Stale.String() {
				hint = "; its holder is not running on this host, so --force is safe"
			}
			fmt.Fprintf(stderr, "nfsflock: %s: not breaking the lock of %s, which has not expired: expires %s (%s)%s\n",
				r.Path, r.holderText(), r.Expires.Format(time.RFC3339), r.expiryText(time.Now()), hint)
			return exitUnavailable, nil
		}
		broke, err := b.Break(*force)
		if err != nil {
			return exitFailed, err
		}
		if broke {
			fmt.Fprintf(stdout, "%s: broke the lock of %s (%s)\n", r.Path, r.holderText(), r.expiryText(time.Now()))
			return exitOK, nil
		}
	}
	fmt.Fprintf(stderr, "nfsflock: %s: the lock changed each time it was about to be broken; left alone\n", l.Path())
	return exitUnavailable, nil
}

// A lockBreaker removes the lock file of another holder.
//
// flock does not export this yet; stopgapBreaker builds it from the methods
// it has. Once (*flock.Lock).Break(force bool) (bool, error) exists, the
// Lock itself is the lockBreaker and stopgapBreaker goes.
type lockBreaker interface {
	// Break removes the lock file, the very instance it reads, if its
	// expiry and the clock slop have passed, or whatever its expiry if
	// force is set. It reports whether it removed it: false, and no error,
	// when there is no lock file, or it has not expired and force is not
	// set, or it changed while being broken (refreshed or taken anew).
	Break(force bool) (bool, error)
}

// stopgapBreaker breaks through TryAcquire, which breaks a breakable lock
// safely (it moves the lock file aside, checks that it moved the instance
// it judged expired, and restores it otherwise), then Release.
type stopgapBreaker struct {
	lock *flock.Lock
	slop time.Duration
}

func (b stopgapBreaker) Break(force bool) (bool, error) {
	if !force {
		return takeAndRelease(b.lock)
	}
	// For a forced break, a second Lock whose clock runs ahead to just past
	// the lock's expiry and slop judges it breakable. Its own claim's
	// expiry is then no later than that, should nfsflock die holding it.
	expires, err := b.lock.Expiration()
	if errors.Is(err, flock.ErrNotLocked) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ahead := aheadClock{offset: max(0, time.Until(expires.Add(b.slop+time.Millisecond)))}
	l, err := flock.New(b.lock.Path(), flock.WithClockSlop(b.slop), flock.WithLifetime(time.Nanosecond), flock.WithClock(ahead))
	if err != nil {
		return false, err
	}
	defer l.Close()
	return takeAndRelease(l)
}

// takeAndRelease makes one attempt to take the lock, breaking it if it is
// breakable, and releases it at once. It reports whether it held it.
func takeAndRelease(l *flock.Lock) (bool, error) {
	held, err := l.TryAcquire()
	if err != nil || !held {
		return false, err
	}
	if err := l.Release(); err != nil {
		return true, fmt.Errorf("releasing after the break: %w", err)
	}
	return true, nil
}

// aheadClock is the system clock moved forward by offset.
type aheadClock struct{ offset time.Duration }

func (c aheadClock) Now() time.Time { return time.Now().Add(c.offset) }

func (c aheadClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }
