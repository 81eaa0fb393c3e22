package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// Exit statuses, from sysexits(3) where one fits and from the shells for a
// command that cannot be run.
const (
	exitOK          = 0
	exitUsage       = 64  // EX_USAGE: bad flags or arguments
	exitLost        = 70  // EX_SOFTWARE: the lock was lost while the command ran, or it stayed stopped
	exitFailed      = 71  // EX_OSERR: nfsflock itself failed (filesystem, system)
	exitUnavailable = 75  // EX_TEMPFAIL: the lock could not be had; the default of -E
	exitCannotRun   = 126 // the command was found but could not be started
	exitNotFound    = 127 // the command was not found, or only through a relative PATH entry
	exitSignalBase  = 128 // 128+N: signal N ended the command, or nfsflock while it waited
)

func main() {
	os.Exit(nfsflock(os.Args[1:], os.Stdout, os.Stderr))
}

// nfsflock runs the command line args and returns the exit status.
func nfsflock(args []string, stdout, stderr io.Writer) int {
	verb := runVerb
	name, args := splitVerb(args)
	switch name {
	case "status":
		verb = statusVerb
	case "break":
		verb = breakVerb
	}
	status, err := verb(args, stdout, stderr)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		warnf(stderr, "%v", ue.err)
		fmt.Fprintln(stderr, "Run 'nfsflock -h' for help.")
		return exitUsage
	case err != nil:
		warnf(stderr, "%v", err)
		if status == exitOK {
			status = exitFailed
		}
	}
	return status
}

// splitVerb returns the verb that args name and the arguments that follow
// it. A first argument that is a verb is the verb; without one, it is run.
func splitVerb(args []string) (verb string, rest []string) {
	if len(args) > 0 {
		switch args[0] {
		case "run", "status", "break":
			return args[0], args[1:]
		}
	}
	return "run", args
}

// usageError is a mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// newFlagSet returns a flag set that reports instead of printing.
func newFlagSet(verb string) *flag.FlagSet {
	flags := flag.NewFlagSet("nfsflock "+verb, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	return flags
}

// parseFlags parses the flags at the front of args, which come before
// LOCKFILE for every verb, and returns the arguments after them. The flag
// package prints nothing: its complaints come back as usage errors. ended
// reports that a "--" ended the flags, so that nothing after it is a flag.
// (A "--" just before the rest is never a flag's value: no flag of
// nfsflock takes "--" as one.)
func parseFlags(flags *flag.FlagSet, args []string) (rest []string, ended bool, err error) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, false, err
		}
		return nil, false, usageError{err}
	}
	rest = flags.Args()
	n := len(args) - len(rest)
	return rest, n > 0 && args[n-1] == "--", nil
}

// looksLikeFlag reports whether arg would be a flag before LOCKFILE.
func looksLikeFlag(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

// maxDuration is the longest lifetime, timeout, clock slop or grace period
// nfsflock takes: 100 years, the bound of flock.MaxLifetime, which flock is
// about to export. Longer ones would overflow the arithmetic of expiry
// times and deadlines.
const maxDuration = 100 * 365 * 24 * time.Hour

// durationFlag is a flag.Value for a non-negative duration no longer than
// maxDuration, given as seconds ("2", "0.5", as flock(1) takes them) or as
// a Go duration.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) {
			return 0, fmt.Errorf("%q is not a usable number of seconds", s)
		}
		if secs > maxDuration.Seconds() {
			return 0, fmt.Errorf("%s seconds is longer than the largest allowed, %v (100 years)", s, maxDuration)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is neither a number of seconds nor a duration such as 500ms", s)
	}
	if d < 0 || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%s is negative", s)
	}
	if d > maxDuration {
		return 0, fmt.Errorf("%s is longer than the largest allowed, %v (100 years)", s, maxDuration)
	}
	return d, nil
}

// durationVar defines a duration flag under each of names.
func durationVar(flags *flag.FlagSet, d *time.Duration, value time.Duration, names ...string) {
	*d = value
	for _, name := range names {
		flags.Var(durationFlag{d}, name, "")
	}
}

// parseLockArgs parses the arguments of a verb that looks at a lock: the
// verb's own flags, already defined in flags, --clock-slop, and LOCKFILE.
func parseLockArgs(flags *flag.FlagSet, args []string) (path string, slop time.Duration, err error) {
	verb := strings.TrimPrefix(flags.Name(), "nfsflock ")
	durationVar(flags, &slop, flock.DefaultClockSlop, "clock-slop")
	rest, ended, err := parseFlags(flags, args)
	if err != nil {
		return "", 0, err
	}
	switch {
	case len(rest) == 0:
		return "", 0, usagef("%s: missing LOCKFILE", verb)
	case rest[0] == "":
		return "", 0, usagef("%s: empty LOCKFILE", verb)
	}
	if i := slices.IndexFunc(rest[1:], looksLikeFlag); i >= 0 && !ended {
		return "", 0, usagef("%s: %s after LOCKFILE %s: flags come before LOCKFILE", verb, rest[1+i], rest[0])
	}
	if len(rest) > 1 {
		return "", 0, usagef("%s: one LOCKFILE expected, got %q", verb, rest)
	}
	return rest[0], slop, nil
}

// newLock returns a Lock for path. A bad path or option is a usage error;
// something other than a regular file where the lock file belongs is not.
func newLock(path string, opts ...flock.Option) (*flock.Lock, error) {
	l, err := flock.New(path, opts...)
	if errors.Is(err, flock.ErrInvalid) && !errors.Is(err, flock.ErrNotRegular) {
		return nil, usageError{err}
	}
	return l, err
}
