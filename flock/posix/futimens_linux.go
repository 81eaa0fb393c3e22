package posix

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futimens sets both times of an open file, in nanoseconds. It calls
// utimensat with a NULL path, which acts on the descriptor itself; x/sys's
// Futimes goes through /proc/self/fd, which a chroot or a container may
// lack.
func futimens(fd int, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
