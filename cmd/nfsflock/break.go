package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nfsflock/nfsflock/flock"
)

// breakOptions are the command line of break.
type breakOptions struct {
	path  string
	lock  lockFlags
	force bool
}

func parseBreak(args []string) (breakOptions, error) {
	var o breakOptions
	flags := newFlagSet("break")
	flags.boolVar(&o.force, "", "force")
	o.lock.define(flags)
	var err error
	o.path, err = parseLockArgs(flags, args)
	return o, err
}

// breakVerb removes an expired lock: nfsflock break [flags] LOCKFILE.
func breakVerb(args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseBreak(args)
	if err != nil {
		return exitUsage, err
	}
	l, err := newLock(o.path, o.lock.options()...)
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()

	// A lock refreshed or taken anew between the look and the break is left
	// alone; look again a few times before giving up.
	for range 3 {
		st, err := l.Inspect()
		if err != nil {
			return exitFailed, lockError{o.path, err}
		}
		if !st.Exists {
			fmt.Fprintf(stdout, "%s: not locked\n", printable(o.path))
			return exitOK, nil
		}
		if !st.Breakable && !o.force {
			warnf(stderr, "%s", refusal(o, st))
			return exitUnavailable, nil
		}
		broke, err := l.Break(o.force)
		switch {
		case errors.Is(err, flock.ErrBreaking):
			warnf(stderr, "%s: another process is breaking the lock of %s at this moment; left to it", o.path, holderWords(st))
			return exitUnavailable, nil
		case err != nil:
			return exitFailed, lockError{o.path, err}
		case broke:
			when := "expired " + approx(st.At.Sub(st.Expiry)) + " ago"
			if !st.Expired {
				when = "was to expire in " + approx(st.Expiry.Sub(st.At))
			}
			fmt.Fprintf(stdout, "%s\n", printable(fmt.Sprintf("%s: broke the lock of %s; it %s", o.path, holderWords(st), when)))
			return exitOK, nil
		}
	}
	warnf(stderr, "%s: the lock changed each time it was about to be broken; left alone", o.path)
	return exitUnavailable, nil
}

// refusal says why break leaves the lock that st describes alone, and
// what would break it.
func refusal(o breakOptions, st flock.Status) string {
	msg := fmt.Sprintf("%s: not breaking the lock of %s: it %s", o.path, holderWords(st), expiryWords(st, o.lock.slop.d))
	if st.State != flock.Stale || o.lock.deadOwner {
		return msg
	}
	// Its pid runs nothing here. That is a hint, not a verdict: a holder
	// in another pid namespace under this hostname (a container) runs
	// although its pid does not here. Say what --dead-owner-break would
	// do, as the library judges it.
	msg += fmt.Sprintf("; no process has pid %d on this host", st.Holder.PID)
	dead := o.lock
	dead.deadOwner = true
	if l, err := flock.New(o.path, dead.options()...); err == nil {
		defer l.Close()
		if st, err := l.Inspect(); err == nil && st.Breakable {
			return msg + ", so unless it runs in another pid namespace (a container) under this hostname, --dead-owner-break breaks it"
		} else if err == nil && st.State == flock.Stale {
			return msg + ", but its claim says it runs in another pid namespace, where it may well run: --dead-owner-break leaves it alone"
		}
	}
	return msg
}
