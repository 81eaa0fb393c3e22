package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// The exit statuses of status, one per state of the lock, so that scripts
// can ask: if nfsflock status -q L; then ... (held).
const (
	statusHeld    = 0 // a lock file whose expiry has not passed
	statusFree    = 1 // no lock file
	statusExpired = 2 // a lock file whose expiry has passed
	statusStale   = 3 // a holder of this host whose pid runs no process here
)

// statusOptions are the command line of status.
type statusOptions struct {
	path   string
	lock   lockFlags
	asJSON bool
	quiet  bool
}

func parseStatus(args []string) (statusOptions, error) {
	var o statusOptions
	flags := newFlagSet("status")
	flags.boolVar(&o.asJSON, "", "json")
	flags.boolVar(&o.quiet, "q", "quiet")
	o.lock.define(flags)
	var err error
	o.path, err = parseLockArgs(flags, args)
	return o, err
}

// statusVerb prints what the lock file says, and exits with a status that
// says it too: nfsflock status [flags] LOCKFILE.
// farAhead is how far ahead of the filesystem's time an expiry must lie
// for status to warn of it: further than any holder's lifetime should
// reach. (A Status's FarAhead is judged by its Lock's lifetime.)
const farAhead = 24 * time.Hour

func statusVerb(args []string, stdout, _ io.Writer) (int, error) {
	o, err := parseStatus(args)
	if err != nil {
		return exitUsage, err
	}
	l, err := newLock(o.path, append(o.lock.options(), flock.WithLifetime(farAhead))...)
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()
	st, err := l.Inspect()
	if err != nil {
		return exitFailed, lockError{o.path, err}
	}
	r := newReport(l.Path(), st)
	switch {
	case o.quiet:
	case o.asJSON:
		text, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return exitFailed, err
		}
		if err := printJSON(stdout, append(text, '\n')); err != nil {
			return exitFailed, err
		}
	default:
		for line := range strings.Lines(statusText(r.Path, st, o.lock.slop.d)) {
			fmt.Fprintln(stdout, printable(strings.TrimSuffix(line, "\n")))
		}
	}
	return r.exitStatus(), nil
}

// A report is the JSON that status --json prints: all that one read of the
// lock file showed (a [flock.Status]), and the word for its state that the
// exit status says.
type report struct {
	Path      string    `json:"path"`
	Status    string    `json:"status"` // free, held, expired or stale
	State     string    `json:"state"`  // flufl.lock's name of the flock.State
	Locked    bool      `json:"locked"` // a lock file exists
	Holder    *holder   `json:"holder,omitempty"`
	Claim     string    `json:"claim,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	Expired   bool      `json:"expired"`   // its expiry had passed at "at"
	Breakable bool      `json:"breakable"` // a waiting nfsflock with these flags would break it
	Local     bool      `json:"local"`     // its holder named this host
	Alive     bool      `json:"alive"`     // local, and a process with its pid runs here
	Ours      bool      `json:"ours"`      // held by this nfsflock itself: never, for status
	At        time.Time `json:"at"`        // when the lock file was read
	// ClockOffset is the filesystem's clock minus this host's, in
	// seconds, as measured; FarAhead says the expiry lies absurdly far
	// ahead of the filesystem's now (a host whose clock was wrong).
	ClockOffset float64 `json:"clock_offset"`
	FarAhead    bool    `json:"far_ahead"`
}

// holder is what the lock file says of its holder; absent when its contents
// are not a claim.
type holder struct {
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	LockFile string `json:"lockfile"`
}

func newReport(path string, st flock.Status) report {
	r := report{
		Path:      path,
		Status:    statusWord(st),
		State:     st.State.String(),
		Locked:    st.Exists,
		Claim:     st.Claim,
		Expires:   st.Expiry,
		Expired:   st.Expired,
		Breakable: st.Breakable,
		Local:     st.Local,
		Alive:     st.Alive,
		Ours:      st.Ours,
		At:        st.At,

		ClockOffset: st.ClockOffset.Seconds(),
		FarAhead:    st.FarAhead,
	}
	if st.Holder != nil {
		r.Holder = &holder{Hostname: st.Holder.Hostname, PID: st.Holder.PID, LockFile: st.Holder.LockFile}
	}
	return r
}

// statusWord names the state of the lock for people and scripts.
func statusWord(st flock.Status) string {
	switch {
	case !st.Exists:
		return "free"
	case st.State == flock.Stale:
		return "stale"
	case st.Expired:
		return "expired"
	}
	return "held"
}

func (r report) exitStatus() int {
	switch r.Status {
	case "free":
		return statusFree
	case "stale":
		return statusStale
	case "expired":
		return statusExpired
	}
	return statusHeld
}

// statusText is what status prints for people: a line per fact, each
// "name: value". A fact learnt from more than the one read (how far this
// host's clock is off the filesystem's) would be a line of its own.
func statusText(path string, st flock.Status, slop time.Duration) string {
	var b strings.Builder
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "%-8s %s\n", name+":", fmt.Sprintf(format, args...))
	}
	line("lock", "%s", path)
	if !st.Exists {
		line("status", "free: there is no lock file")
		return b.String()
	}
	who := holderWords(st)
	switch word := statusWord(st); {
	case word == "stale":
		line("status", "stale, held by %s, this host, where no process has pid %d; a process in another pid namespace (a container) under this hostname may hold it", who, st.Holder.PID)
	case word == "held" && st.Local && st.Alive:
		line("status", "held by %s, a running process of this host", who)
	case word == "held":
		line("status", "held by %s", who)
	default:
		line("status", "%s, held by %s", word, who)
	}
	line("expiry", "%s (%s)", st.Expiry.Format(time.RFC3339), expiryWords(st, slop))
	if st.FarAhead {
		line("warning", "the expiry lies more than a day ahead of the filesystem's time, as a host whose clock was wrong writes; it is not broken by itself: nfsflock break --force %s breaks it", quoted(path))
	}
	line("state", "%s (flufl.lock's name)", st.State)
	if off := st.ClockOffset; off > time.Second || off < -time.Second {
		line("clock", "this host's clock is %s %s the filesystem's", approx(abs(off)), map[bool]string{true: "behind", false: "ahead of"}[off > 0])
	}
	return b.String()
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
