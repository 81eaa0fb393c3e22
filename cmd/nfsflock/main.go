package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"

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
	survivePipes()
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
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, version())
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

// parseLockArgs parses the arguments of status and break: flags, which
// the caller has defined in flags, and LOCKFILE.
func parseLockArgs(flags *flagSet, args []string) (path string, err error) {
	rest, ended, err := flags.parse(args)
	if err != nil {
		return "", err
	}
	switch {
	case len(rest) == 0:
		return "", usagef("%s: missing LOCKFILE", flags.verb)
	case rest[0] == "":
		return "", usagef("%s: empty LOCKFILE", flags.verb)
	}
	if i := slices.IndexFunc(rest[1:], looksLikeFlag); i >= 0 && !ended {
		return "", usagef("%s: %s after LOCKFILE %s: flags come before LOCKFILE", flags.verb, rest[1+i], rest[0])
	}
	if len(rest) > 1 {
		return "", usagef("%s: one LOCKFILE expected, got %d: %s", flags.verb, len(rest), strings.Join(quoteAll(rest), " "))
	}
	return rest[0], nil
}

func quoteAll(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellWord(a)
	}
	return q
}

// lockFlags are the flags that every verb takes to judge a lock as a
// waiting nfsflock judges it.
type lockFlags struct {
	slop      durationValue
	deadOwner bool
}

func (o *lockFlags) define(flags *flagSet) {
	flags.durationVar(&o.slop, flock.DefaultClockSlop, false, "", "clock-slop")
	flags.boolVar(&o.deadOwner, "", "dead-owner-break")
}

// options returns the Lock's options for o.
func (o lockFlags) options() []flock.Option {
	opts := []flock.Option{flock.WithClockSlop(o.slop.d)}
	if o.deadOwner {
		opts = append(opts, flock.WithDeadOwnerBreak())
	}
	return opts
}

// newLock returns a Lock for path. A bad path or option is a usage error;
// something other than a regular file where the lock file belongs is not.
func newLock(path string, opts ...flock.Option) (*flock.Lock, error) {
	l, err := flock.New(path, opts...)
	if errors.Is(err, flock.ErrInvalid) && !errors.Is(err, flock.ErrNotRegular) {
		return nil, usageError{lockError{path, err}}
	}
	if err != nil {
		return nil, lockError{path, err}
	}
	return l, nil
}

// version returns what nfsflock --version prints: the module's version
// from the build information (v1.2.3 when built by go install ...@v1.2.3,
// "(devel)" when built in its own tree), the revision it was built from,
// if known, and the Go version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "nfsflock (unknown version)"
	}
	v := "nfsflock " + info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (revision %.12s%s)", rev, modified)
	}
	return v + ", built with " + info.GoVersion
}
