package flock

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// systemRunClock returns CLOCK_BOOTTIME at the moment now was read from
// time.Now: the time since boot, which no one sets and which counts the
// time the machine was suspended. Reading it costs a system call (x/sys
// does not use the vDSO), and the time base reads the run clock several
// times an acquisition, so it is carried by Go's monotonic reading, which
// now holds (CLOCK_MONOTONIC, read through the vDSO with the wall clock),
// plus the time spent suspended, CLOCK_BOOTTIME − CLOCK_MONOTONIC, which
// changes only across a suspend. A suspend moves the wall clock against
// the monotonic one (the wall clock goes on, restored from the hardware
// clock), so the suspended time is read again whenever they have moved
// apart by more than a millisecond since it was last read (a suspend, or a
// wall clock set), and at least once a second.
func systemRunClock(now time.Time) (time.Duration, bool) {
	mono := now.Sub(runStart) // by the monotonic readings
	apart := now.Round(0).Sub(runStart.Round(0)) - mono
	suspended.Lock()
	defer suspended.Unlock()
	if !suspended.known || (apart-suspended.apart).Abs() > time.Millisecond ||
		mono-suspended.at > time.Second || mono < suspended.at {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
			return 0, false
		}
		// Read after the boot clock, the monotonic one makes the
		// offset at most as large as it is: the run clock never runs
		// ahead of CLOCK_BOOTTIME. The offset never shrinks.
		offset := time.Duration(ts.Nano()) - time.Since(runStart)
		suspended.offset = max(suspended.offset, offset)
		suspended.known, suspended.apart, suspended.at = true, apart, mono
	}
	return mono + suspended.offset, true
}

// runStart is the origin of the monotonic readings (see systemRunClock).
var runStart = time.Now()

// suspended is what systemRunClock last learned of the time this machine
// spent suspended.
var suspended struct {
	sync.Mutex
	known  bool
	offset time.Duration // CLOCK_BOOTTIME − the monotonic time since runStart
	apart  time.Duration // the wall clock's lead on the monotonic one then
	at     time.Duration // the monotonic time since runStart then
}

// systemRunCountsSuspend says that systemRunClock counts the time the
// machine was suspended.
const systemRunCountsSuspend = true
