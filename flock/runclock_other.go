//go:build !linux && !darwin

package flock

import "time"

// systemRunClock has no clock of the system that counts suspends here:
// the Lock carries its bounds by Go's monotonic clock (timebase.go).
func systemRunClock(time.Time) (time.Duration, bool) { return 0, false }

// systemRunCountsSuspend says that there is no run clock of the system
// here: the Lock's is Go's monotonic reading, which stops in a suspend.
const systemRunCountsSuspend = false
