package flock

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Errors that the methods of [Lock] return, wrapped in an [*fs.PathError]
// that names the operation and the lock path. Compare them with
// [errors.Is].
var (
	// ErrAlreadyLocked: Acquire found the lock already held by this Lock.
	ErrAlreadyLocked = errors.New("flock: already locked")
	// ErrNotLocked: the Lock does not hold the lock (Release, Refresh), or
	// there is no lock file to report on (Details, Expiration).
	ErrNotLocked = errors.New("flock: not locked")
	// ErrTimeout: Acquire gave up after the Lock's default timeout.
	ErrTimeout = errors.New("flock: timed out")
	// ErrLockLost: the Lock held the lock and it is no longer ours: another
	// process broke it after it expired, or it was removed or replaced. It
	// also satisfies errors.Is(err, ErrNotLocked).
	ErrLockLost error = lostError{}
	// ErrClosed: the Lock was closed.
	ErrClosed = errors.New("flock: lock closed")
	// ErrNotRegular: something other than a regular file (a symlink,
	// directory, FIFO, socket or device) is where the lock file belongs.
	// The lock never touches or removes it. The error that wraps it says
	// what is there.
	ErrNotRegular = fsys.ErrNotRegular
	// ErrLinkUnsupported: the filesystem refuses hard links, which the
	// lock needs.
	ErrLinkUnsupported = errors.New("flock: hard links are not supported on this filesystem")
	// ErrInvalid: New was given a bad path or option.
	ErrInvalid = errors.New("flock: invalid argument")
	// ErrBreaking: Break found another process breaking the lock, and
	// force was not set. The error that wraps it says who.
	ErrBreaking = errors.New("flock: another process is breaking the lock")
)

// NotRegularError is the error, wrapped in an [*fs.PathError], that says
// what was found where the lock file belongs: its Kind is "symlink",
// "directory", "FIFO", "socket" or "device". It matches [ErrNotRegular].
type NotRegularError = fsys.NotRegularError

type lostError struct{}

func (lostError) Error() string { return "flock: lock lost" }

func (lostError) Is(target error) bool { return target == ErrNotLocked }

func (l *Lock) err(op string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: l.path, Err: err}
}

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
