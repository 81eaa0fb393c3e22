package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// statusOptions are the command line of status.
type statusOptions struct {
	path   string
	slop   time.Duration
	asJSON bool
}

func parseStatus(args []string) (statusOptions, error) {
	var o statusOptions
	flags := newFlagSet("status")
	flags.BoolVar(&o.asJSON, "json", false, "")
	var err error
	o.path, o.slop, err = parseLockArgs(flags, args)
	return o, err
}

// statusVerb prints what the lock file says: nfsflock status [flags] LOCKFILE.
func statusVerb(args []string, stdout, _ io.Writer) (int, error) {
	o, err := parseStatus(args)
	if err != nil {
		return exitUsage, err
	}
	l, err := newLock(o.path, flock.WithClockSlop(o.slop))
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()
	r, err := readReport(l, o.slop, time.Now)
	if err != nil {
		return exitFailed, err
	}
	if o.asJSON {
		text, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return exitFailed, err
		}
		return exitOK, printJSON(stdout, append(text, '\n'))
	}
	fmt.Fprintf(stdout, "lock:    %s\nstate:   %s (%s)\n", printable(r.Path), r.State, r.stateText())
	if !r.Locked {
		return exitOK, nil
	}
	fmt.Fprintf(stdout, "holder:  %s\nexpires: %s (%s)\n", printable(r.holderText()), r.Expires.Format(time.RFC3339), r.expiryText(time.Now()))
	return exitOK, nil
}

// A report is what can be read of a lock file at one moment. It is also
// the JSON that status --json prints.
type report struct {
	Path      string    `json:"path"`
	State     string    `json:"state"`  // flufl.lock's name of the flock.State
	Locked    bool      `json:"locked"` // a lock file exists
	Holder    *holder   `json:"holder,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	Expired   bool      `json:"expired"`   // its expiry has passed
	Breakable bool      `json:"breakable"` // its expiry and the clock slop have passed

	slop time.Duration
}

// holder is what the lock file says of its holder; absent when its contents
// cannot be parsed.
type holder struct {
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	LockFile string `json:"lockfile"`
}

// readReport reads the state, holder and expiry of the lock file. They
// come from separate reads; when the lock file disappears between them it
// reads again, so that the report describes one lock or none.
func readReport(l *flock.Lock, slop time.Duration, now func() time.Time) (report, error) {
	var (
		r   report
		err error
	)
	for range 5 {
		var changed bool
		r, changed, err = readReportOnce(l, slop, now)
		if !changed {
			break
		}
	}
	return r, err
}

func readReportOnce(l *flock.Lock, slop time.Duration, now func() time.Time) (r report, changed bool, err error) {
	r = report{Path: l.Path(), slop: slop}
	state, err := l.State()
	if err != nil {
		return r, false, err
	}
	r.State = state.String()
	if state == flock.Unlocked {
		return r, false, nil
	}
	r.Locked = true
	expires, err := l.Expiration()
	if errors.Is(err, flock.ErrNotLocked) {
		return r, true, nil
	}
	if err != nil {
		return r, false, err
	}
	d, err := l.Details()
	switch {
	case err == nil:
		r.Holder = &holder{Hostname: d.Hostname, PID: d.PID, LockFile: d.LockFile}
	case errors.Is(err, flock.ErrNotLocked):
		// Gone, or there but unparseable: only the second leaves an expiry.
		if _, err := l.Expiration(); err != nil {
			return r, errors.Is(err, flock.ErrNotLocked), err
		}
	default:
		return r, false, err
	}
	t := now()
	r.Expires = expires
	r.Expired = t.After(expires)
	r.Breakable = t.After(expires.Add(slop))
	return r, false, nil
}

// stateText says what flufl.lock's name of the state means.
func (r report) stateText() string {
	switch r.State {
	case flock.Unlocked.String():
		return "no lock file"
	case flock.Stale.String():
		return "its holder is not running on this host"
	case flock.TheirsExpired.String():
		return "held by a running process of this host, expired"
	case flock.Unknown.String():
		if r.Holder == nil {
			return "a lock file whose contents cannot be parsed"
		}
		return "held by another process or host"
	}
	return "held"
}

// holderText says who holds the lock, with the hostname that the lock file
// names quoted if it holds characters that do not print.
func (r report) holderText() string {
	if r.Holder == nil {
		return "unknown (the lock file's contents cannot be parsed)"
	}
	return fmt.Sprintf("pid %d on %s", r.Holder.PID, quoted(r.Holder.Hostname))
}

// expiryText says when the lock expires, relative to now, and when it may
// be broken.
func (r report) expiryText(now time.Time) string {
	switch {
	case !now.After(r.Expires):
		return "in " + approx(r.Expires.Sub(now))
	case !now.After(r.Expires.Add(r.slop)):
		return fmt.Sprintf("expired %s ago; breakable in %s", approx(now.Sub(r.Expires)), approx(r.Expires.Add(r.slop).Sub(now)))
	default:
		return fmt.Sprintf("expired %s ago; breakable", approx(now.Sub(r.Expires)))
	}
}

// approx rounds d for people: tenths of a second below 10s, seconds above.
func approx(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
