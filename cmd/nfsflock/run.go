package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// tokenEnv passes the fencing token to the command, with --fencing.
const tokenEnv = "NFSFLOCK_TOKEN"

// defaultGrace is how long a command whose lock was lost has between
// SIGTERM and SIGKILL.
const defaultGrace = 5 * time.Second

// minLifetime is the shortest lifetime that run takes. The lock is
// refreshed every third of its lifetime, each refresh a write of the lock
// file's times and a read of them back (a round trip to the server on a
// network filesystem), and a lock just taken must be refreshed before it
// expires for its command to start: with a lifetime of a few milliseconds
// it expired before that, again and again, and the command never ran.
// Below 100 ms, a refresh every 33 ms, a scheduling delay on a loaded
// machine or one slow round trip is enough to lose the lock.
const minLifetime = 100 * time.Millisecond

type runOptions struct {
	path     string
	argv     []string
	lifetime durationValue
	timeout  durationValue // 0: no limit
	nonblock string        // the flag that asked for one attempt, as typed (-n, -w 0); "" to wait
	conflict int           // exit status when the lock could not be had
	grace    durationValue
	lock     lockFlags
	quiet    bool
	verbose  bool
	fencing  bool
}

// shell runs the COMMAND of -c, as sh -c COMMAND: /bin/sh, where POSIX
// systems have it, or the sh that PATH finds on Windows.
var shell = func() string {
	if runtime.GOOS == "windows" {
		return "sh"
	}
	return "/bin/sh"
}()

func parseRun(args []string) (runOptions, error) {
	var o runOptions
	flags := newFlagSet("run")
	flags.durationVar(&o.lifetime, flock.DefaultLifetime, true, "l", "lifetime")
	flags.durationVar(&o.timeout, 0, false, "w", "timeout", "wait")
	flags.durationVar(&o.grace, defaultGrace, false, "k", "kill-after")
	flags.add(&flagSpec{short: "n", long: []string{"nonblock", "nb"}, set: func(typed, _ string) error {
		o.nonblock = typed
		return nil
	}})
	flags.exitStatusVar(&o.conflict, exitUnavailable, "E", "conflict-exit-code")
	flags.boolVar(&o.quiet, "q", "quiet")
	flags.boolVar(&o.verbose, "", "verbose")
	flags.boolVar(&o.fencing, "", "fencing")
	o.lock.define(flags)
	// flock(1)'s flags: the lock is exclusive, as with -x; the command
	// never holds the lock's file open, as with -o.
	var ignored bool
	flags.boolVar(&ignored, "x", "exclusive")
	flags.boolVar(&ignored, "e")
	flags.boolVar(&ignored, "o", "close")
	flags.refuse("a lock file taken with link(2) has one holder at a time: nfsflock has no shared locks (leave out -s for an exclusive one)", "s", "shared")
	flags.refuse("nfsflock stays while COMMAND runs, to keep the lock's lifetime refreshed; leave out -F", "F", "no-fork")
	flags.refuse("nfsflock releases the lock itself when COMMAND ends, and holds no file descriptor to unlock; to remove a lock that another process left, use nfsflock break", "u", "unlock")
	flags.add(&flagSpec{short: "c", long: []string{"command"}, arg: "COMMAND", set: func(typed, _ string) error {
		return usagef("%s comes after LOCKFILE, as in flock(1): nfsflock [flags] LOCKFILE %s COMMAND", typed, typed)
	}})
	rest, ended, err := flags.parse(args)
	if err != nil {
		return o, err
	}
	if o.lifetime.d < minLifetime {
		return o, usagef("%s: want a lifetime of at least %v: the lock is refreshed every third of it, and a shorter one expires between refreshes, or before the command can start", o.lifetime.typed, minLifetime)
	}
	if o.timeout.typed != "" && o.timeout.d == 0 && o.nonblock == "" {
		o.nonblock = o.timeout.typed // as in flock(1), -w 0 does not wait
	}
	if len(rest) == 0 {
		return o, usagef("missing LOCKFILE")
	}
	o.path, rest = rest[0], rest[1:]
	if o.path == "" {
		return o, usagef("empty LOCKFILE")
	}
	if len(rest) > 0 && !ended && (rest[0] == "-c" || rest[0] == "--command") {
		// flock(1)'s LOCKFILE -c COMMAND: one COMMAND, which sh runs.
		if len(rest) != 2 {
			return o, usagef("%s after LOCKFILE takes exactly one COMMAND, which sh -c runs; got %d arguments", rest[0], len(rest)-1)
		}
		o.argv = []string{shell, "-c", rest[1]}
		return o, nil
	}
	if len(rest) > 0 && rest[0] == "--" {
		rest, ended = rest[1:], true
	}
	switch {
	case len(rest) == 0 && isNumber(o.path):
		return o, usagef("missing COMMAND after LOCKFILE %s: nfsflock cannot lock a file descriptor as flock(1) does (flock %s); run the command under nfsflock instead: nfsflock LOCKFILE COMMAND", o.path, o.path)
	case len(rest) == 0:
		return o, usagef("missing COMMAND after LOCKFILE %s", o.path)
	case rest[0] == "":
		return o, usagef("empty COMMAND")
	case !ended && looksLikeFlag(rest[0]):
		// All after LOCKFILE is the command's: a flag there is one put
		// in the wrong place, not a command named like a flag.
		return o, usagef("%s after LOCKFILE %s: flags come before LOCKFILE, and all after it is COMMAND (write -- before a COMMAND that begins with -)", rest[0], o.path)
	}
	o.argv = rest
	return o, nil
}

// isNumber reports whether s is a number, as flock(1)'s file descriptor.
func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// runVerb takes the lock, runs the command, releases the lock, and returns
// the command's status: nfsflock [run] [flags] LOCKFILE [--] COMMAND [ARGS...].
func runVerb(args []string, _, stderr io.Writer) (int, error) {
	o, err := parseRun(args)
	if err != nil {
		return exitUsage, err
	}
	// Find the command before waiting for the lock, not after.
	prog, err := exec.LookPath(o.argv[0])
	if errors.Is(err, exec.ErrDot) {
		// A program planted in the working directory must not run in
		// place of the one meant, least of all as root: refuse it as
		// os/exec does, and say how to run it on purpose.
		return exitNotFound, fmt.Errorf("not running %s: it was found as %s through a relative entry of PATH (such as . or an empty one); to run it on purpose, give its path: %s",
			o.argv[0], explicitPath(prog), explicitPath(prog))
	}
	if err != nil {
		return startStatus(err), errors.New(startWords(o.argv[0], err))
	}
	opts := append([]flock.Option{flock.WithLifetime(o.lifetime.d)}, o.lock.options()...)
	if o.fencing {
		opts = append(opts, flock.WithFencing())
	}
	switch {
	case o.nonblock != "":
		// Acquire makes one attempt, breaking an expired lock included,
		// before it looks at its timeout.
		opts = append(opts, flock.WithTimeout(time.Nanosecond))
	case o.timeout.d > 0:
		opts = append(opts, flock.WithTimeout(o.timeout.d))
	}
	// l checks the path and options now, reads the holder's details for
	// the waiting display and the messages, and takes the lock. It is a
	// Lock, not guard.Do's callback, because nfsflock continued after ^Z
	// must check the lock before it continues the command.
	l, err := newLock(o.path, opts...)
	if err != nil {
		return exitFailed, err
	}
	defer l.Close()

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	relay := startRelay(cancel)
	defer relay.stop()

	var display *waitDisplay
	if !o.quiet && o.nonblock == "" {
		var giveUp time.Time
		if o.timeout.d > 0 {
			giveUp = time.Now().Add(o.timeout.d)
		}
		display = showWait(os.Stderr, l, o.lock.slop.d, giveUp)
	}
	waitStart := time.Now()
	err = l.Acquire(ctx)
	display.stop()
	var interrupted interruptedError
	switch {
	case errors.As(err, &interrupted):
		return exitSignalBase + interrupted.number(), nil
	case errors.Is(err, flock.ErrTimeout):
		if !o.quiet {
			warnf(stderr, "%s", unavailableText(l, o, err))
		}
		return o.conflict, nil
	case err != nil:
		return exitFailed, lockError{o.path, err}
	}
	if o.verbose {
		warnf(stderr, "getting the lock took %s; running %s", approx(time.Since(waitStart)), o.argv[0])
	}
	return runHolding(ctx, l, relay, prog, o, stderr)
}

// runHolding runs the command while l holds the lock and keeps it
// refreshed, releases the lock, and returns nfsflock's exit status.
func runHolding(ctx context.Context, l *flock.Lock, relay *relay, prog string, o runOptions, stderr io.Writer) (int, error) {
	kctx, stopRefreshing := l.KeepAlive(ctx)
	token, fenced := l.Token()
	env := commandEnv(os.Environ(), token, fenced)
	j, err := relay.start(kctx, func() error { return confirmLock(l) }, func() (*job, error) { return startCommand(prog, o.argv, env) })
	if err != nil {
		stopRefreshing()
		l.Release()
		var (
			interrupted interruptedError
			se          startError
		)
		switch {
		case errors.As(err, &interrupted):
			return exitSignalBase + interrupted.number(), nil
		case errors.Is(err, flock.ErrLockLost):
			warnf(stderr, "%v", lockError{o.path, err})
			return exitLost, nil
		case errors.As(err, &se):
			return startStatus(se.err), errors.New(startWords(o.argv[0], se.err))
		}
		return exitFailed, lockError{o.path, err}
	}
	status, why, err := j.supervise(kctx, o.grace.d, o.lifetime.d, func() error { return confirmLock(l) })
	j.dismiss()
	relay.clear()

	lost := stopRefreshing()
	relErr := l.Release()
	var stopped stoppedError
	if why != nil && !errors.As(why, &stopped) {
		lost = why // ctx ended, or confirmLock failed: the lock was lost
	}
	switch {
	case lost == nil && errors.Is(relErr, flock.ErrLockLost):
		lost, relErr = relErr, nil
	case lost != nil && (errors.Is(relErr, flock.ErrLockLost) || errors.Is(relErr, flock.ErrNotLocked)):
		relErr = nil // lost already, and lost says why
	}
	code := status
	if why != nil {
		code = exitLost
		if lost == nil {
			warnf(stderr, "%s was %v; terminated it and released the lock", o.argv[0], why)
		}
	}
	if lost != nil {
		code = exitLost
		warnf(stderr, "%v", lockError{o.path, lost})
		if why != nil {
			warnf(stderr, "terminated %s, whose lock was lost while it ran", o.argv[0])
		} else {
			warnf(stderr, "%s ended with status %d, but its lock was lost while it ran", o.argv[0], status)
		}
	}
	if err != nil {
		warnf(stderr, "after %s ended: %v", o.argv[0], err)
	}
	if relErr != nil {
		warnf(stderr, "after %s ended: %v", o.argv[0], lockError{o.path, relErr})
	}
	j.waitWatchdog()
	return code, nil
}

// startCommand starts the command as startJob does. A file that the
// system refuses to execute for want of a #! line is run by /bin/sh, as
// execvp(3) runs it (see shellFallback); if that fails too, the error is
// the shell's.
func startCommand(prog string, argv, env []string) (*job, error) {
	j, err := startJob(prog, argv, env)
	if sh, shArgv, ok := shellFallback(prog, argv, err); ok {
		return startJob(sh, shArgv, env)
	}
	return j, err
}

// confirmLock checks, by refreshing it, that l still holds the lock,
// after nfsflock has been suspended for who knows how long. A lock that
// cannot be confirmed counts as lost: the command must not run without.
func confirmLock(l *flock.Lock) error {
	err := l.Refresh(0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flock.ErrLockLost):
		return fmt.Errorf("%w, found when nfsflock was continued", err)
	}
	return fmt.Errorf("%w: it could not be confirmed when nfsflock was continued: %w", flock.ErrLockLost, err)
}

// commandEnv returns the command's environment: environ without any
// NFSFLOCK_TOKEN, which only this acquisition may set, and with the fencing
// token if there is one (ok). An inherited one would be an earlier
// holder's, smaller than this one's, or a second entry of which the
// command might read either.
func commandEnv(environ []string, token uint64, ok bool) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !sameEnvName(name, tokenEnv) {
			env = append(env, kv)
		}
	}
	if ok {
		env = append(env, tokenEnv+"="+strconv.FormatUint(token, 10))
	}
	return env
}

// sameEnvName reports whether a and b name one environment variable: on
// Windows, case does not count.
func sameEnvName(a, b string) bool {
	if runtime.GOOS == "windows" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// unavailableText says who holds the lock that could not be had, and,
// when Acquire's error err says that the lock was breakable but this user
// may not break it (another user's file in a sticky directory), whose
// file is in the way.
func unavailableText(l *flock.Lock, o runOptions, err error) string {
	wait := fmt.Sprintf("not waiting (%s)", o.nonblock)
	if o.nonblock == "" {
		wait = fmt.Sprintf("gave up waiting after %s (%s)", approx(o.timeout.d), o.timeout.typed)
	}
	st, ierr := l.Inspect()
	if ierr != nil || !st.Exists {
		return fmt.Sprintf("%s: lock not taken; %s", o.path, wait)
	}
	expiry := expiryWords(st, o.lock.slop.d)
	if why := blockedWords(err); why != "" && st.Breakable {
		// The lock file read now is breakable as the one that the last
		// attempt could not break was: the same, or one like it.
		expiry = blockedExpiryWords(st, why)
	}
	return fmt.Sprintf("%s: held by %s (%s); %s", o.path, holderWords(st), expiry, wait)
}

// explicitPath returns the relative path prog as one that PATH plays no
// part in: ./prog rather than prog.
func explicitPath(prog string) string {
	parent := ".." + string(filepath.Separator)
	if filepath.IsAbs(prog) || strings.HasPrefix(prog, parent) {
		return prog
	}
	return "." + string(filepath.Separator) + prog
}

// startError is a command that could not be started.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }
func (e startError) Unwrap() error { return e.err }

// startStatus is the exit status for a command that could not be run, as
// shells have it.
func startStatus(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitCannotRun
}

// interruptedError is a signal that ended the wait for the lock.
type interruptedError struct{ sig os.Signal }

func (e interruptedError) Error() string { return "interrupted by " + e.sig.String() }

func (e interruptedError) number() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}

// A relay passes the signals that nfsflock gets to the command's process
// group while the command runs. Before it runs, a signal ends the wait for
// the lock instead.
//
// It catches the stop signals that a terminal or another process may send
// (stopSignals: SIGTSTP, SIGTTIN, SIGTTOU), from the start, so that none
// stops nfsflock alone while the command runs on unrefreshed. Under a
// shell's job control (shellAbove): before the command runs, one stops
// nfsflock, as by default, and start confirms the lock before it starts
// the command; once the command runs, it goes to the command as ^Z, whose
// stop stops nfsflock with the whole command frozen (supervise, suspend).
// Where no shell could continue nfsflock, they are ignored, as the system
// ignores them for a process group that nobody could continue.
type relay struct {
	sigs   chan os.Signal
	stops  chan os.Signal // stopSignals, caught; nil where none are (Windows)
	done   chan struct{}
	joined chan struct{}
	once   sync.Once

	mu      sync.Mutex
	job     *job
	cancel  context.CancelCauseFunc
	started bool
	paused  bool // stopped by ^Z before the command started
	// own counts the stop signals that nfsflock sent its own process
	// group (suspend) and has yet to see: the relay drops them.
	own int
}

// startRelay catches the relayed signals, leaving alone those that
// nfsflock was started ignoring (as under nohup), which the command then
// ignores too: SIGHUP and SIGINT, the ones Go's runtime keeps ignored.
func startRelay(cancel context.CancelCauseFunc) *relay {
	r := &relay{
		sigs:   make(chan os.Signal, 8),
		done:   make(chan struct{}),
		joined: make(chan struct{}),
		cancel: cancel,
	}
	for _, sig := range relayedSignals {
		if !signal.Ignored(sig) {
			signal.Notify(r.sigs, sig)
		}
	}
	if len(stopSignals) > 0 {
		r.stops = make(chan os.Signal, 4)
		signal.Notify(r.stops, stopSignals...)
	}
	go r.loop()
	return r
}

func (r *relay) loop() {
	defer close(r.joined)
	for {
		select {
		case <-r.done:
			return
		case sig := <-r.sigs:
			r.mu.Lock()
			switch {
			case r.job != nil:
				r.job.signal(sig)
			case !r.started:
				r.cancel(interruptedError{sig})
			}
			r.mu.Unlock()
		case <-r.stops:
			r.mu.Lock()
			switch {
			case r.own > 0:
				r.own--
			case !shellAbove():
			case r.job != nil:
				r.job.signal(tstpSignal)
			case !r.started:
				r.paused = true
				stopSelf()
				// Stop signals that came while it was stopped (a write
				// to the terminal retried under stty tostop) are spent.
				for len(r.stops) > 0 {
					<-r.stops
				}
			}
			r.mu.Unlock()
		}
	}
}

// start runs startJob unless a signal or a lost lock has ended ctx first,
// or ^Z stopped nfsflock and confirm cannot confirm the lock since, and
// relays signals to the job from then on.
func (r *relay) start(ctx context.Context, confirm func() error, startJob func() (*job, error)) (*job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if r.paused {
		r.paused = false
		if err := confirm(); err != nil {
			return nil, err
		}
	}
	j, err := startJob()
	if err != nil {
		return nil, err
	}
	j.ownStop = r.ownStop
	r.job, r.started = j, true
	return j, nil
}

// ownStop notes that nfsflock is about to send a stop signal to its own
// process group, which the relay is to drop when it comes.
func (r *relay) ownStop() {
	r.mu.Lock()
	r.own++
	r.mu.Unlock()
}

// clear stops relaying to the job, which has ended.
func (r *relay) clear() {
	r.mu.Lock()
	r.job = nil
	r.mu.Unlock()
}

// stop restores the signals' handling and joins the relay's goroutine.
func (r *relay) stop() {
	r.once.Do(func() {
		signal.Stop(r.sigs)
		if r.stops != nil {
			signal.Stop(r.stops)
		}
		close(r.done)
		<-r.joined
	})
}
