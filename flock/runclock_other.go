//go:build !linux && !darwin

package flock

import "time"

// systemRunClock has no clock of the system that counts suspends here:
// the Lock carries its bounds by Go's monotonic clock (timebase.go).
func systemRunClock(time.Time) (time.Duration, bool) { return 0, false }
