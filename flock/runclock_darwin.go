package flock

import (
	"time"

	"golang.org/x/sys/unix"
)

// systemRunClock reads CLOCK_MONOTONIC (the moment given is not needed
// there: the read is cheap), which on Apple's systems no one
// sets and which goes on while the machine sleeps (mach_continuous_time).
func systemRunClock(time.Time) (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// systemRunCountsSuspend says that systemRunClock counts the time the
// machine slept.
const systemRunCountsSuspend = true
