package main

import (
	"fmt"
	"io"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// breakOptions are the command line of break.
type breakOptions struct {
	path  string
	slop  time.Duration
	force bool
}

func parseBreak(args []string) (breakOptions, error) {
	var o breakOptions
	flags := newFlagSet("break")
	flags.BoolVar(&o.force, "force", false, "")
	var err error
	o.path, o.slop, err = parseLockArgs(flags, args)
	return o, err
}

// breakVerb removes an expired lock: nfsflock break [flags] LOCKFILE.
func breakVerb(args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseBreak(args)
	if err != nil {
		return exitUsage, err
	}
	l, err := newLock(o.path, flock.WithClockSlop(o.slop))
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()

	// A lock refreshed or taken anew between the look and the break is left
	// alone; look again a few times before giving up.
	for range 3 {
		r, err := readReport(l, o.slop, time.Now)
		if err != nil {
			return exitFailed, err
		}
		if !r.Locked {
			fmt.Fprintf(stdout, "%s: not locked\n", printable(r.Path))
			return exitOK, nil
		}
		if !r.Breakable && !o.force {
			hint := ""
			if r.State == flock.Stale.String() {
				hint = "; its holder is not running on this host, so --force is safe"
			}
			warnf(stderr, "%s: not breaking the lock of %s, which has not expired: expires %s (%s)%s",
				r.Path, r.holderText(), r.Expires.Format(time.RFC3339), r.expiryText(time.Now()), hint)
			return exitUnavailable, nil
		}
		broke, err := l.Break(o.force)
		if err != nil {
			return exitFailed, err
		}
		if broke {
			fmt.Fprintf(stdout, "%s\n", printable(fmt.Sprintf("%s: broke the lock of %s (%s)", r.Path, r.holderText(), r.expiryText(time.Now()))))
			return exitOK, nil
		}
	}
	warnf(stderr, "%s: the lock changed each time it was about to be broken; left alone", l.Path())
	return exitUnavailable, nil
}
