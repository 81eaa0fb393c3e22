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
			fmt.Fprintf(stdout, "%s\n", printable(fmt.Sprintf("%s: broke the lock of %s; it %s", o.path, holderWords(st), expiryWords(st, o.lock.slop.d))))
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
	if st.State == flock.Stale && !o.lock.deadOwner {
		// A holder in another pid namespace under this hostname (a
		// container) runs although its pid does not here: this is a
		// hint, not a verdict.
		msg += fmt.Sprintf("; no process has pid %d on this host, so unless it runs in another pid namespace (a container) under this hostname, --dead-owner-break breaks it", st.Holder.PID)
	}
	return msg
}
