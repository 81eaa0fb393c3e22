package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
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

const usage = `Usage:
  nfsflock [run] [flags] LOCKFILE [--] COMMAND [ARGS...]
  nfsflock status [--json] [--clock-slop DURATION] LOCKFILE
  nfsflock break [--force] [--clock-slop DURATION] LOCKFILE

nfsflock runs a command while it holds a lock file that is safe on NFS and
other network filesystems, and that Python's flufl.lock shares.

run (the verb when none is given) waits for the lock, runs COMMAND in a
process group of its own while it keeps the lock's lifetime refreshed,
releases the lock, and exits with the command's status (128+N when signal N
ended it). SIGINT, SIGTERM and SIGHUP sent to nfsflock are passed on to the
command's process group. If the lock is lost while the command runs (another
process broke it after nfsflock was paused past its lifetime, or the lock file
was removed or replaced), the group gets SIGTERM, then SIGKILL after the
grace period of -k, and nfsflock exits 70. If nfsflock dies without a
chance to stop the command (SIGKILL, a crash), the command gets SIGKILL on
Linux and FreeBSD; elsewhere it runs on.

A command that stops (SIGSTOP, or SIGTTIN from reading the terminal in the
background) keeps its lock for the lock's lifetime at most: one still
stopped then is ended the same way, before it runs again, the lock is
released, and nfsflock exits 70. On a terminal, ^Z stops nfsflock along with
the command instead; the lock is not refreshed while nfsflock is stopped,
and once continued, nfsflock refreshes it before it continues the command.
If the lock was lost meanwhile, the command is ended, not continued, and
nfsflock exits 70. While it waits on a terminal, nfsflock shows who holds
the lock and when that lock expires.

  -l, --lifetime DURATION     how long the lock lasts unless refreshed; it is
                              refreshed about every third of it (default 15s)
  -w, --timeout DURATION      give up waiting after DURATION (default: wait as
                              long as it takes); -w 0 is -n
  -n, --nonblock              make one attempt and give up if the lock is held
  -E, --conflict-exit-code N  exit status when the lock could not be had
                              (default 75)
  -k, --kill-after DURATION   grace period between SIGTERM and SIGKILL when
                              the lock is lost (default 5s)
      --clock-slop DURATION   how long past its expiry another's lock is left
                              alone before it is broken; it must cover clock
                              differences between hosts and how stale the
                              filesystem's attributes can be (default 10s)
  -q, --quiet                 show nothing while waiting and say nothing when
                              the lock could not be had
      --fencing               take a fencing token with the lock and pass it
                              to COMMAND as NFSFLOCK_TOKEN (see below)

status prints the lock's state (flufl.lock's names: unlocked, stale,
theirs_expired, unknown), its holder (pid and host) and its expiry.

      --json                  print one JSON object: path, state, locked,
                              holder {hostname, pid, lockfile}, expires,
                              expired, breakable
      --clock-slop DURATION   as for run; decides "breakable" (default 10s)

break removes a lock whose expiry and clock slop have passed, the same way a
waiter would. It refuses an unexpired lock (exit 75) unless --force.

      --force                 break the lock even if it has not expired; its
                              holder, if alive, finds the lock lost
      --clock-slop DURATION   as for run (default 10s)

With --fencing, COMMAND finds in NFSFLOCK_TOKEN a number larger than that of
every earlier holder of the lock (kept in LOCKFILE.fence files beside it); a
store that refuses writes with a smaller token than it has seen is safe from a
command whose lock was lost while it was paused. Without --fencing, COMMAND
finds no NFSFLOCK_TOKEN, even if nfsflock was given one.

A DURATION is a number of seconds (2, 0.5) or a Go duration (500ms, 1m30s),
at most 876000h (100 years).
A first argument that is a verb is the verb: write ./status for a lock file
named status. The -- before COMMAND may be left out.

Exit status:
  0-255   run: the command's own status; 128+N if signal N ended it
  0       status, break: done (break: also when there was no lock)
  64      usage error
  70      run: the lock was lost while the command ran, or the command
          stayed stopped for longer than the lock's lifetime
  71      nfsflock failed: the lock file's directory is missing, permissions,
          an I/O error
  75      run: the lock could not be had (-n, -w; -E changes it);
          break: the lock has not expired
  126     run: COMMAND could not be started
  127     run: COMMAND was not found, or only through a relative entry of
          PATH (. or an empty one), which nfsflock refuses: write ./COMMAND
  128+N   run: nfsflock got signal N while it waited for the lock
`

func main() {
	os.Exit(nfsflock(os.Args[1:], os.Stdout, os.Stderr))
}

// nfsflock runs the command line args and returns the exit status.
func nfsflock(args []string, stdout, stderr io.Writer) int {
	verb := runVerb
	if len(args) > 0 {
		switch args[0] {
		case "run":
			args = args[1:]
		case "status":
			verb, args = statusVerb, args[1:]
		case "break":
			verb, args = breakVerb, args[1:]
		}
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

// parseFlags parses args with flags and turns its complaints into usage
// errors. The flag package prints nothing: the message comes back here.
func parseFlags(flags *flag.FlagSet, args []string) error {
	err := flags.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

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

// lockPathArg checks that args holds exactly one lock file.
func lockPathArg(verb string, args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", usagef("%s: missing LOCKFILE", verb)
	case 1:
		if args[0] == "" {
			return "", usagef("%s: empty LOCKFILE", verb)
		}
		return args[0], nil
	default:
		return "", usagef("%s: one LOCKFILE expected, got %q", verb, args)
	}
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
