package flock

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// The errors that the functions and methods of this package return. Each
// comes wrapped in an [*fs.PathError] whose Op names the call ("new",
// "acquire", "release", ...) and whose Path is the lock path, so that
// errors.As finds the path and [errors.Is] finds the sentinel. Compare them
// with errors.Is, never ==.
var (
	// ErrAlreadyLocked is returned by Acquire and TryAcquire when this Lock
	// already holds the lock, and by Break when the lock file is this
	// Lock's own.
	ErrAlreadyLocked = errors.New("flock: already locked")

	// ErrNotLocked is returned by Release and Refresh, and is the cause of
	// KeepAlive's context, when this Lock does not hold the lock and has
	// not lost it either: it was never taken, or it was released already.
	// Nothing was changed, and nothing that was protected went unprotected.
	// Details and Expiration return it when there is no lock file, and
	// Details when the lock file's contents name no holder. It never means
	// that a lock was lost: see [ErrLockLost], which does not match it.
	ErrNotLocked = errors.New("flock: not locked")

	// ErrTimeout is returned by Acquire when the timeout of [WithTimeout]
	// passes before the lock is had.
	ErrTimeout = errors.New("flock: timed out")

	// ErrLockLost is returned by Release, Refresh and IsLocked, and is the
	// cause of KeepAlive's context, when this Lock held the lock and found
	// that it no longer does: another process broke it once it had
	// expired, it was removed or replaced, or its lifetime ran out before
	// the call. Whatever was done under the lock since it was last known
	// to be held may have overlapped another holder's work. The Lock then
	// no longer holds the lock, and its claim file is removed. It does not
	// match [ErrNotLocked].
	ErrLockLost = errors.New("flock: lock lost")

	// ErrClosed is returned by every method of a Lock after Close, and by
	// an Acquire that was waiting when Close was called.
	ErrClosed = errors.New("flock: lock closed")

	// ErrNotRegular is matched by the error of New, Acquire and the other
	// methods that read the lock file when something other than a regular
	// file (a symlink, directory, FIFO, socket or device) is at the lock
	// path, or, for a call about to break the lock (a waiter of an
	// expired lock, Break, a dead owner's lock with WithDeadOwnerBreak),
	// at the breakers' lock beside it (the lock path + ".break"). The Lock
	// never touches or removes it. Such errors also unwrap to a
	// [*NotRegularError], which says what is there. When it replaces the
	// lock file of a Lock that held the lock, the error also matches
	// [ErrLockLost].
	ErrNotRegular = fsys.ErrNotRegular

	// ErrLinkUnsupported is returned by Acquire and TryAcquire with
	// [WithFencing] when the filesystem has neither hard links nor a
	// rename that does not replace, which the fencing counter needs. The
	// lock itself works without them (see Primitives in the package doc).
	ErrLinkUnsupported = errors.New("flock: hard links are not supported on this filesystem")

	// ErrInvalid is returned by New when it is given a bad path or option
	// (then the error also matches [retry.ErrInvalid] if the retry policy
	// is at fault), and by Refresh when given a lifetime out of range.
	ErrInvalid = errors.New("flock: invalid argument")

	// ErrBreaking is returned by Break when another process is breaking
	// the lock at that moment and force is not set. The error that wraps
	// it says who. With force, Break first waits the few seconds that the
	// breakers' lock lasts, and returns ErrBreaking only if other breakers
	// keep coming.
	ErrBreaking = errors.New("flock: another process is breaking the lock")
)

// NotRegularError is the error, wrapped in an [*fs.PathError], that says
// what was found where the lock file (or the breakers' lock) belongs: its
// Kind is "symlink", "directory", "FIFO", "socket" or "device". It
// matches [ErrNotRegular].
type NotRegularError = fsys.NotRegularError

// err wraps err in the *fs.PathError of operation op on the lock path.
// Errors of the filesystem calls under it often name the lock path too
// (open, rename, link): those are said without it, so that the message
// names the path once; the chain still holds them, and unwraps to every
// error it did before.
func (l *Lock) err(op string, err error) error {
	if err == nil {
		return nil
	}
	if pe, ok := err.(*fs.PathError); ok && pe.Op == op && pe.Path == l.path {
		return err // wrapped already
	}
	if msg := l.pathOnce(err); msg != err.Error() {
		err = &reworded{msg: msg, err: err}
	}
	return &fs.PathError{Op: op, Path: l.path, Err: err}
}

// pathOnce returns err's message with each error in its chain that names
// the lock path said without it: "open: not a regular file" for "open
// /d/a.lck: not a regular file", "rename to /d/x: ..." for "rename
// /d/a.lck /d/x: ...".
func (l *Lock) pathOnce(err error) string {
	msg := err.Error()
	var walk func(error)
	walk = func(err error) {
		var short string
		switch e := err.(type) {
		case nil:
			return
		case *fs.PathError:
			if e.Path == l.path {
				short = e.Op + ": " + e.Err.Error()
			}
		case *os.LinkError:
			switch l.path {
			case e.New:
				short = e.Op + " from " + e.Old + ": " + e.Err.Error()
			case e.Old:
				short = e.Op + " to " + e.New + ": " + e.Err.Error()
			}
		}
		if short != "" {
			msg = strings.Replace(msg, err.Error(), short, 1)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return msg
}

// reworded is err with another message.
type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// gone reports an error that means "that file is not there", which NFS
// may also say as ESTALE.
func gone(err error) bool {
	e := errnoOf(err)
	return e == syscall.ENOENT || e == syscall.ESTALE
}

// linkRefused reports a link(2) failure that is contention when the lock
// file exists (sshfs answers EPERM for an existing target) and a filesystem
// without hard links when it does not.
func linkRefused(err error) bool {
	e := errnoOf(err)
	// ENOTSUP and EOPNOTSUPP are one number on Linux, two on the BSDs.
	return e == syscall.EPERM || e == syscall.ENOTSUP || e == syscall.EOPNOTSUPP || e == syscall.ENOSYS || e == syscall.EMLINK
}
