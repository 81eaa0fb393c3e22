//go:build unix && !aix && !linux

package posix

import (
	"time"

	"golang.org/x/sys/unix"
)

// futimens sets both times of an open file, in microseconds.
func futimens(fd int, t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Futimes(fd, []unix.Timeval{tv, tv})
}
