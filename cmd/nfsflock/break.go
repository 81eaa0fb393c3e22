package main

import (
	"fmt"
	"io"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// breakVerb removes an expired lock: nfsflock break [--force] LOCKFILE.
func breakVerb(args []string, stdout, stderr io.Writer) (int, error) {
	flags := newFlagSet("break")
	force := flags.Bool("force", false, "")
	l, slop, code, err := lockFromArgs(flags, args)
	if err != nil {
		return code, err
	}
	defer l.Close()

	// A lock refreshed or taken anew between the look and the break is left
	// alone; look again a few times before giving up.
	for range 3 {
		r, err := readReport(l, slop, time.Now)
		if err != nil {
			return exitFailed, err
		}
		if !r.Locked {
			fmt.Fprintf(stdout, "%s: not locked\n", printable(r.Path))
			return exitOK, nil
		}
		if !r.Breakable && !*force {
			hint := ""
			if r.State == flock.Stale.String() {
				hint = "; its holder is not running on this host, so --force is safe"
			}
			warnf(stderr, "%s: not breaking the lock of %s, which has not expired: expires %s (%s)%s",
				r.Path, r.holderText(), r.Expires.Format(time.RFC3339), r.expiryText(time.Now()), hint)
			return exitUnavailable, nil
		}
		broke, err := l.Break(*force)
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
