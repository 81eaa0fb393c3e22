package flock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/retry"
)

// nameMax is the longest file name most filesystems allow (NAME_MAX).
const nameMax = 255

// Lock is a lock file shared by processes, possibly on several hosts. Make
// one with [New]; the zero Lock is not usable.
//
// A Lock is one holder. Two Locks for one path exclude each other, whether
// they are in one process or in two, but goroutines that share one Lock
// share its lock and do not exclude each other: while it is held, a second
// Acquire returns [ErrAlreadyLocked], and any goroutine may Release it.
// Give each goroutine that must take turns a Lock of its own (or use
// package guard, which does). The methods of a Lock are safe for
// concurrent use.
type Lock struct {
	path string // absolute
	dir  string
	base string
	pid  int
	cfg  config

	acquiring chan struct{} // a token while an Acquire or TryAcquire runs
	closing   chan struct{} // closed by Close, before it waits for mu
	closeOnce sync.Once

	mu       mutex
	lifetime time.Duration
	tag      uint64     // where this process's pids mean something (fsys.FS.Namespace)
	claim    *claimFile // this acquisition's claim; nil while idle
	// claimExpiry is the expiry last set on the claim before linking, as
	// the filesystem stored it.
	claimExpiry time.Time
	// claimTimed is when the claim's times were last set, as the clocks
	// read it just before.
	claimTimed reading
	// cutTimes says the filesystem was seen to store expiries cut to
	// whole seconds, and cut2 to two seconds (FAT), learned by noteCut
	// and confirmTimes; expiryIn then rounds them up.
	cutTimes, cut2 atomic.Bool
	// direct says that the lock's directory lies on a filesystem where one
	// Lstat tells whether the lock file is our claim (fsys.Direct), as
	// learned from a claim on device directDev (learnDirect).
	direct bool
	// swaps says that Exchange there swaps names in one step of the
	// kernel's (fsys.Swapper; every Direct filesystem, and overlayfs),
	// learned with direct.
	swaps       bool
	directKnown bool
	directDev   uint64
	ident       identity   // whether the filesystem reports file identity
	publish     publishing // how the claim is put at the lock path
	tb          timeBase   // what the Lock knows of the filesystem's clock (timebase.go)
	held        bool
	lost        bool  // held, then found not ours; reported until the next Acquire or Release
	waiting     error // why the last attempt could not break an expired lock; reported at a timeout
	closed      bool

	// farBreakers is the breakers' lock last seen with an expiry further
	// ahead than a breaker writes, and when it was first seen, for a Lock
	// that does not share its sightings (farSeenFor).
	farBreakers *sighting

	acq   *acquisition // the current or last acquisition: its expiry and keepers (keepalive.go)
	token uint64       // fencing token of the current acquisition; 0 for none (fencing.go)
}

// mutex guards a Lock's state, which its methods and its keep-alive
// goroutines share; they hold it across filesystem calls. It is a
// channel rather than a sync.Mutex so that a goroutine waiting for it is
// durably blocked in testing/synctest's sense: the simulation waits for
// every simulated process to block before it lets one call proceed, and
// a wait on a sync.Mutex would never count as blocked.
type mutex chan struct{}

// Lock takes the mutex. A Lock not made by New has none.
func (m mutex) Lock() {
	if m == nil {
		panic("flock: Lock used without New")
	}
	m <- struct{}{}
}

// Unlock releases the mutex.
func (m mutex) Unlock() { <-m }

// mustBeMade panics if l was not made by New, where a method would
// otherwise block for good on its nil channels.
func (l *Lock) mustBeMade() {
	if l.acquiring == nil {
		panic("flock: Lock used without New")
	}
}

// sideFileOf reports whether base, a lock file's base name, is the name
// of a side file of another lock file in its directory (sep is the Lock's
// separator), which it returns, with what that side file is: its breakers'
// lock, fencing files, or a claim-shaped name (a claim, or a lock file
// moved aside), which that lock's sweep may remove. Suffixes are compared
// in any case, as on a case-insensitive filesystem.
func sideFileOf(base, sep string) (owner, what string, ok bool) {
	if stem, ok := cutSuffixFold(base, ".break"); ok {
		return stem, "the breakers' lock", true
	}
	if stem, ok := cutSuffixFold(base, fenceSuffix); ok {
		return stem, "the fencing hint", true
	}
	if i := strings.LastIndexByte(base, '.'); i > 0 && i < len(base)-1 && strings.Trim(base[i+1:], "0123456789") == "" {
		if stem, ok := cutSuffixFold(base[:i], fenceSuffix); ok {
			return stem, "a fencing counter", true
		}
	}
	for _, s := range append([]string{sep}, claim.Separators...) {
		if s == "" {
			continue
		}
		if d, ok := claim.Parse([]byte(base), s); ok && d.Sep == s && claim.IsClaimOf(base, d.LockFile, s) {
			return d.LockFile, "a claim", true
		}
	}
	return "", "", false
}

// cutSuffixFold returns s without suffix, and true, if s ends in suffix
// under Unicode case folding, rune by rune (so that "x.brea\u212a", with a
// Kelvin sign, ends in ".break", as a case-insensitive filesystem may
// judge), with something before it.
func cutSuffixFold(s, suffix string) (string, bool) {
	end := len(s)
	for i := len(suffix); i > 0; {
		want, n := utf8.DecodeLastRuneInString(suffix[:i])
		got, m := utf8.DecodeLastRuneInString(s[:end])
		if m == 0 || !strings.EqualFold(string(got), string(want)) {
			return "", false
		}
		i, end = i-n, end-m
	}
	return s[:end], end > 0
}

// absPath returns path made absolute. Where the system follows a symlink
// before it takes a ".." after it (everywhere but Windows, which reduces
// ".." in the text first), the directory of a path with a ".." is
// resolved through the filesystem, so that the Lock's file is the one the
// path names to open(2), to flufl.lock and to a shell, and not the one
// that removing "link/.." as text would name.
func absPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	dir, base := filepath.Split(path)
	if err != nil || filepath.Separator != '/' || base == "" || base == "." || base == ".." || !slices.Contains(strings.Split(dir, "/"), "..") {
		return abs, err
	}
	// As before wherever the text names the directory the system does
	// (no symlink before a ".."), so that one directory keeps one name.
	// Only where both are seen to be one: a system's reading that cannot
	// be looked at (missing yet, or not searchable by this user) may be
	// another directory, which a later New, or another user's, would take.
	if byText, err := os.Stat(filepath.Dir(abs)); err == nil {
		if bySystem, err := os.Stat(dir); err == nil && os.SameFile(byText, bySystem) {
			return abs, nil
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(real) {
		wd, err := syscall.Getwd() // the system's, without $PWD's symlinks
		if err != nil {
			return "", err
		}
		real = filepath.Join(wd, real)
	}
	return filepath.Join(real, base), nil
}

// MaxLifetime is the longest lifetime, clock slop or timeout a Lock
// accepts: an expiry must stay within what file times can hold.
const MaxLifetime = 100 * 365 * 24 * time.Hour

// New returns a Lock for the lock file at path, which need not exist. A
// relative path is made absolute now, against the current directory. New
// checks the path and options, and looks at the path and its directory
// (with lstat and stat), but creates, changes and removes nothing.
//
// New fails with an error wrapping [ErrInvalid] for an empty path, one that
// ends in a separator or whose file name holds a backslash (which claims
// written on Windows use as a separator), a bad option (wrapping
// [retry.ErrInvalid] too for a bad retry policy), a separator found in the
// path or hostname, a claim name that would be longer than a file name may
// be, or a name that another lock path's side files use: one ending in
// ".break" (the breakers' lock of the path without it), ".fence" or
// ".fence." and digits (its fencing files), in any case, or one shaped like
// a claim of another lock in the directory under this Lock's separator or
// flufl.lock's, "|" and "^" (which its sweep may remove as a dead
// process's; a Lock of another separator sharing the directory is not known
// here). A lock there and the other path's lock would each remove or move
// the other's files: a breaker of L may break L.break once it has stood
// unchanged far ahead of the clock, as a planted breakers' lock does (see
// Breaking). It fails with an error wrapping [ErrNotRegular], and not
// ErrInvalid, when something other than a regular file is at path, and with
// the error of stat (such as one matching [fs.ErrNotExist]) when the path's
// directory does not exist or is not a directory.
func New(path string, opts ...Option) (*Lock, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil { // an option left unset: var o Option; if x { o = ... }
			o(&cfg)
		}
	}
	invalid := func(format string, args ...any) (*Lock, error) {
		return nil, &fs.PathError{Op: "new", Path: path, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
	}
	if path == "" {
		return invalid("empty path")
	}
	abs, err := absPath(path)
	if err != nil {
		return nil, &fs.PathError{Op: "new", Path: path, Err: err}
	}
	dir, base := filepath.Split(abs)
	dir = filepath.Clean(dir)
	if base == "" || base == "." || base == ".." || strings.HasSuffix(path, string(filepath.Separator)) {
		return invalid("path names a directory")
	}
	if owner, what, ok := sideFileOf(base, cfg.sep); ok {
		return invalid("%q is the name of %s of the lock file %q; use another name", base, what, owner)
	}
	if cfg.hostname == "" {
		if cfg.hostname, err = hostname(); err != nil {
			return nil, &fs.PathError{Op: "new", Path: path, Err: fmt.Errorf("hostname: %w", err)}
		}
	}
	switch {
	case cfg.lifetime <= 0:
		return invalid("lifetime %v must be positive", cfg.lifetime)
	case cfg.lifetime > MaxLifetime:
		return invalid("lifetime %v exceeds the largest allowed, %v", cfg.lifetime, MaxLifetime)
	case cfg.timeout < 0:
		return invalid("timeout %v must not be negative", cfg.timeout)
	case cfg.timeout > MaxLifetime:
		return invalid("timeout %v exceeds the largest allowed, %v", cfg.timeout, MaxLifetime)
	case cfg.slop < 0:
		return invalid("clock slop %v must not be negative", cfg.slop)
	case cfg.slop > MaxLifetime:
		return invalid("clock slop %v exceeds the largest allowed, %v", cfg.slop, MaxLifetime)
	case !slices.Contains(claim.Separators, cfg.sep) || (runtime.GOOS == "windows" && cfg.sep == "|"):
		// Any other would make claims that no other Lock, nor
		// flufl.lock, reads, and none would sweep them after a crash.
		return invalid("separator %q: must be %q or %q, those of flufl.lock, which every Lock reads", cfg.sep, claim.Separators[0], claim.Separators[1])
	case strings.Contains(abs, cfg.sep):
		return invalid("path contains the separator %q", cfg.sep)
	case strings.ContainsRune(base, '\\'):
		// Readers on every system cut a claim's path at a backslash too,
		// as Windows writes them, so no Lock would know this lock's
		// claims as its own and none would sweep them after a crash.
		return invalid("lock file name %q contains a backslash", base)
	case strings.Contains(cfg.hostname, cfg.sep):
		return invalid("hostname %q contains the separator %q", cfg.hostname, cfg.sep)
	case strings.ContainsAny(cfg.hostname, "/\\") || strings.IndexFunc(cfg.hostname, unicode.IsControl) >= 0 || strings.TrimSpace(cfg.hostname) != cfg.hostname:
		return invalid("hostname %q", cfg.hostname)
	case strings.ContainsRune(abs, 0):
		return invalid("path contains NUL")
	}
	if err := cfg.policy.Validate(); err != nil {
		return invalid("%w", err)
	}
	l := &Lock{
		path:      abs,
		dir:       dir,
		base:      base,
		pid:       processID,
		cfg:       cfg,
		lifetime:  cfg.lifetime,
		mu:        make(mutex, 1),
		acquiring: make(chan struct{}, 1),
		closing:   make(chan struct{}),
		tag:       cfg.fs.Namespace(),
	}
	if cfg.pid != 0 {
		l.pid = cfg.pid
	}
	if cfg.portable || runtime.GOOS == "windows" {
		l.publish = publishMove
	}
	if p, ok := portableDirs.Load(portableKey{cfg.fs, dir}); ok {
		l.publish = max(l.publish, p.(publishing))
	}
	longest := len(base) + 3*len(cfg.sep) + len(cfg.hostname) + len(strconv.Itoa(l.pid)) + claim.RandomDigits
	if longest > nameMax {
		return invalid("claim file name of %d bytes would exceed %d; use a shorter lock file name or hostname", longest, nameMax)
	}
	// Fencing's side files add a suffix of up to 27 bytes to the base name.
	if longest := len(base) + len(fenceSuffix) + len(".tmp-") + 16; cfg.fencing && longest > nameMax {
		return invalid("fencing file name of %d bytes would exceed %d; use a shorter lock file name", longest, nameMax)
	}
	if fi, err := os.Lstat(abs); err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "new", Path: path, Err: notRegular(fi.Mode())}
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, &fs.PathError{Op: "new", Path: path, Err: err}
	} else if !fi.IsDir() {
		return nil, &fs.PathError{Op: "new", Path: path, Err: &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR}}
	}
	if cfg.onNew != nil {
		cfg.onNew(l)
	}
	return l, nil
}

// newClaimName returns a fresh claim name: the random part makes it
// unpredictable, so nobody can plant a file under it in advance.
func (l *Lock) newClaimName() string {
	return claim.Name(l.path, l.cfg.sep, l.cfg.hostname, l.pid, l.cfg.random()>>1, l.tag)
}

// randomID returns a crypto-random number.
func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// Path returns the absolute lock path.
func (l *Lock) Path() string { return l.path }

// ClaimPath returns the path of this Lock's claim file while it holds the
// lock or is trying to take it, and "" otherwise. Each acquisition has a
// claim of its own, under a fresh random name, which is also what the lock
// file holds. (Where the lock file is published without hard links, the
// claim file itself is gone once the lock is held; see Primitives in the
// package doc.)
func (l *Lock) ClaimPath() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claim == nil {
		return ""
	}
	return l.claim.name
}

// Hostname returns the hostname written into this Lock's claims.
func (l *Lock) Hostname() string { return l.cfg.hostname }

// Lifetime returns the lifetime that the next acquisition or refresh sets.
func (l *Lock) Lifetime() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lifetime
}

// Acquire takes the lock, waiting while another process holds it and
// breaking it once it has expired (see Breaking in the package doc). It
// retries with the backoff of [WithRetry] until the lock is held, ctx is
// done, or the timeout of [WithTimeout] has passed. On Linux, where the
// lock lies on a local filesystem, a wait also ends early, for an attempt,
// when the lock file leaves the lock's name and no other has taken its
// place (an inotify watch on the lock file), when its expiry and clock
// slop pass, and with [WithDeadOwnerBreak] when its holder exits; the
// backoff's retries there, only a safety net, come no more often than
// every 2 s. On a network filesystem a waiter finds the lock free by its
// retries alone.
//
// It returns nil once the lock is held. When ctx ends the wait, the error
// satisfies errors.Is(err, ctx.Err()); when the timeout does, it wraps
// [ErrTimeout]. If this Lock holds the lock already, Acquire returns
// [ErrAlreadyLocked]. Filesystem errors that waiting cannot mend
// (permissions, a missing directory, a read-only filesystem, a name too
// long, a lock path that is not a regular file) are returned at once. On
// failure no claim file is left behind.
//
// Acquire makes one attempt, breaking an expired lock included, before it
// looks at ctx. Concurrent calls on one Lock run one at a time: one that
// finds another under way waits for it to return, and returns without an
// attempt if ctx is done (or the timeout passes) first.
func (l *Lock) Acquire(ctx context.Context) error {
	l.mustBeMade()
	parent := ctx
	if l.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, l.cfg.timeout, ErrTimeout)
		defer cancel()
	}
	// Queue behind another Acquire of this Lock; one attempt is still made
	// below even when ctx is already done.
	select {
	case l.acquiring <- struct{}{}:
	default:
		select {
		case l.acquiring <- struct{}{}:
		case <-ctx.Done():
			return l.waitErr(parent, ctx)
		case <-l.closing:
			return l.err("acquire", ErrClosed)
		}
	}
	defer func() { <-l.acquiring }()

	sched := l.cfg.policy.Schedule()
	waited := false
	var w *watch // ends sleeps early where the system can tell (wake_linux.go)
	rewatch := true
	defer func() { w.stop() }()
	for {
		held, err := l.attempt()
		if err != nil {
			l.abandon()
			return l.err("acquire", err)
		}
		if held {
			l.sweep(waited)
			return nil
		}
		if ctx.Err() != nil {
			l.abandon()
			return l.waitErr(parent, ctx)
		}
		d := sched.Next()
		if w == nil && rewatch {
			// At each sleep until one is had: a watch refused for want of
			// inotify instances may be had later, and meanwhile the sleep
			// is as short as a watched waiter's without an event.
			if w, rewatch = l.watch(); w == nil && rewatch {
				d = unwatched(d)
			}
		}
		waited = true
		if err := l.sleep(ctx, d, w); err != nil {
			l.abandon()
			return l.waitErr(parent, ctx)
		}
	}
}

// waitErr is the error for a wait that ctx or Close ended. It says why an
// expired lock could not be broken, if that is why the wait went on.
func (l *Lock) waitErr(parent, ctx context.Context) error {
	if l.isClosing() {
		// Close ended the wait, or ended it beside ctx: a closed Lock
		// says so first, without waiting for an attempt under way.
		return l.err("acquire", ErrClosed)
	}
	l.mu.Lock()
	why := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	var err error
	switch {
	case parent.Err() != nil:
		err = parent.Err()
		if cause := context.Cause(parent); cause != nil && cause != err {
			err = fmt.Errorf("%w: %w", err, cause)
		}
	case errors.Is(context.Cause(ctx), ErrTimeout):
		err = fmt.Errorf("%w after %v", ErrTimeout, l.cfg.timeout)
	default:
		err = ctx.Err()
	}
	if why != nil {
		err = fmt.Errorf("%w (%v)", err, why)
	}
	return l.err("acquire", err)
}

// sleep waits d unless ctx ends or the Lock is closed first, or w (if
// not nil) ends the wait sooner.
func (l *Lock) sleep(ctx context.Context, d time.Duration, w *watch) error {
	wait := retry.Sleep
	if w != nil {
		wait = w.sleep
	}
	if err := wait(ctx, l.cfg.clock, d, l.closing); err != nil {
		return err
	}
	if l.isClosing() {
		return ErrClosed
	}
	return nil
}

// TryAcquire makes one attempt to take the lock, breaking an expired one
// if need be, and reports whether it now holds it. It does not wait: if an
// Acquire of this Lock is under way it reports false. It returns
// [ErrAlreadyLocked] if this Lock already holds the lock.
func (l *Lock) TryAcquire() (bool, error) {
	l.mustBeMade()
	select {
	case l.acquiring <- struct{}{}:
	default:
		if l.isClosing() {
			// The Acquire under way is one that Close is ending.
			return false, l.err("acquire", ErrClosed)
		}
		return false, nil
	}
	defer func() { <-l.acquiring }()
	held, err := l.attempt()
	if !held {
		l.abandon()
	}
	if err != nil {
		return false, l.err("acquire", err)
	}
	if held {
		l.sweep(false)
	}
	return held, nil
}

// Release gives up the lock, removing the lock file and the claim file. It
// never touches another holder's lock file (see Ownership in the package
// doc). Its errors call for different answers:
//
//   - nil: the lock was held until now, and is free. (A file of the lock
//     that could not be removed after the lock file left the lock's name,
//     such as one another process holds open on Windows, is logged and
//     left; it bears a name of this process's, which sweeps remove.)
//   - [ErrLockLost]: the lock was lost before Release (another process
//     broke it, or it was removed or replaced, or its lifetime ran out):
//     the work done under it since it was last known to be held may have
//     overlapped another holder's. Treat the work as failed or check it.
//     The Lock no longer holds the lock.
//   - [ErrNotLocked]: this Lock did not hold the lock (never acquired, or
//     released already). Nothing happened; a deferred Release after an
//     explicit one can ignore it.
//   - any other error (a filesystem fault): the Lock still holds the lock,
//     and Release may be called again; Close tries once more.
//
// ErrLockLost and ErrNotLocked are distinct: test for ErrLockLost before
// dismissing ErrNotLocked.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err("release", ErrClosed)
	}
	return l.err("release", l.releaseLocked())
}

// Close releases the lock if this Lock holds it, removes its claim file,
// and ends the Lock: later calls of any method return [ErrClosed]; Close
// itself may be called again and then returns nil. An Acquire waiting in
// another goroutine returns ErrClosed, and KeepAlive's context is
// cancelled with it. A lock found lost is not an error of Close.
//
// A Lock that is neither holding the lock nor trying to take it keeps no
// file open and no goroutine running, so after a Release that returned
// nil, ErrLockLost or ErrNotLocked, Close is not needed; it is the way to
// give up a Lock for good, whatever state it is in.
func (l *Lock) Close() error {
	l.mustBeMade()
	// First, so that a call holding mu through a wait (a forced Break
	// outwaiting another breaker) ends it now rather than after it.
	l.closeOnce.Do(func() { close(l.closing) })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.acq != nil {
		l.acq.end(ErrClosed) // before the release below ends it otherwise
	}
	var err error
	if l.held || l.lost {
		err = l.releaseLocked()
		if errors.Is(err, ErrLockLost) {
			err = nil // nothing of ours is left to release
		}
	}
	l.held = false
	if rerr := l.dropClaim(); err == nil {
		err = rerr
	}
	return l.err("close", err)
}

// isClosing reports whether Close has been called.
func (l *Lock) isClosing() bool {
	select {
	case <-l.closing:
		return true
	default:
		return false
	}
}

// Refresh extends the lock's lifetime from now. A lifetime of 0 keeps the
// current one; a positive one becomes the lifetime of later refreshes and
// acquisitions too, unless Refresh returns ErrNotLocked or ErrLockLost.
// It sets the expiry through its own claim's descriptor, so it never
// touches another holder's lock, and then checks that the lock file is
// still that claim; see Leases in the package doc. It returns
// [ErrNotLocked] if this Lock does not hold the lock, [ErrLockLost] if it
// held it and it is no longer ours (or the lifetime had run out already),
// and [ErrInvalid] for a lifetime below 0 or above [MaxLifetime], or for a
// longer one than before whose expiry the filesystem cannot store (tried
// first on a file of its own; see [WithLifetime]). After
// any other error the Lock still holds the lock, with the expiry it had,
// or, where the new lifetime ends sooner, with the new expiry, which the
// call may have written before it failed.
func (l *Lock) Refresh(lifetime time.Duration) error {
	if lifetime < 0 || lifetime > MaxLifetime {
		return l.err("refresh", fmt.Errorf("%w: lifetime %v must be between 0 and %v", ErrInvalid, lifetime, MaxLifetime))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err("refresh", ErrClosed)
	}
	if lifetime > l.lifetime && l.held && !l.lost {
		// A longer lease than any written yet: may its expiry be kept?
		if err := l.fitsTimes(lifetime); err != nil {
			return l.err("refresh", err)
		}
	}
	prev := l.lifetime
	if lifetime > 0 {
		l.lifetime = lifetime
	}
	err := l.refreshLocked()
	if errors.Is(err, ErrNotLocked) || errors.Is(err, ErrLockLost) {
		// Nothing held, nothing refreshed: the lifetime stays as it was.
		l.lifetime = prev
	}
	return l.err("refresh", err)
}

// IsLocked reports whether this Lock holds the lock, checking the lock
// file to be sure. If it held the lock and the lock is no longer ours, or
// its lease has run out (as Refresh and Release judge it; see Leases in
// the package doc), it returns false and [ErrLockLost]. Unlike flufl.lock's is_locked, it does
// not extend the lifetime: call Refresh for that.
func (l *Lock) IsLocked() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, l.err("islocked", ErrClosed)
	}
	l.noteEarlyLoss()
	if l.lost {
		return false, l.err("islocked", ErrLockLost)
	}
	if !l.held {
		return false, nil
	}
	if err := l.check(); err != nil {
		return false, l.err("islocked", err)
	}
	// The file is ours, but the lock counts only within the lease, as
	// Refresh and Release judge it; and a keep-alive may have found it
	// over while the look above was stuck.
	l.noteEarlyLoss()
	if expiry, _, _, _ := l.acq.state(); !l.lost && l.leaseOver(expiry) {
		l.lose(errLeaseOver)
	}
	if l.lost {
		return false, l.err("islocked", ErrLockLost)
	}
	return true, nil
}

// Break removes the lock file if this Lock would break it (its lifetime and
// the clock slop have passed, or, with [WithDeadOwnerBreak], its holder is
// gone; see [Status].Breakable), or whatever its expiry if force is set,
// together with the claim file it names, the same safe way a waiting
// Acquire breaks a lock (see Breaking in the package doc). It reports
// whether it removed a lock file; false and nil when there was none, or it
// was not breakable and force was not set, or it changed meanwhile.
// Breaking this Lock's own lock gives [ErrAlreadyLocked], and finding
// another process breaking the lock gives [ErrBreaking]. With force, Break
// waits for that process instead, for up to 6 s, and then breaks a
// breakers' lock left unchanged for that long.
//
// A lock broken by force is lost to its holder, which learns it at its
// next Refresh, IsLocked or Release: a holder that is still working keeps
// working, unprotected, so force is for holders known to be gone. Where
// lock files are created rather than linked and their times are set by
// path (sshfs without hard links), a holder broken by force in the middle
// of a Refresh may even set the times of the next holder's lock file.
func (l *Lock) Break(force bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, l.err("break", ErrClosed)
	}
	s, err := l.inspect(l.path)
	if gone(err) {
		return false, nil
	}
	if err != nil {
		return false, l.err("break", err)
	}
	if mine, err := l.mine(s); err != nil {
		return false, l.err("break", err)
	} else if mine {
		return false, l.err("break", ErrAlreadyLocked)
	}
	if !force && !l.breakable(s) {
		return false, nil
	}
	broke, err := l.breakLocked(s, force)
	if errors.Is(err, errBreaking) {
		// err says who; ErrBreaking is what callers test for.
		err = &reworded{msg: "flock: " + err.Error(), err: errors.Join(ErrBreaking, err)}
	}
	return broke, l.err("break", err)
}
