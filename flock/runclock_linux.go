package flock

import (
	"time"

	"golang.org/x/sys/unix"
)

// systemRunClock reads CLOCK_BOOTTIME: the time since boot, which no one
// sets and which counts the time the machine was suspended.
func systemRunClock() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
