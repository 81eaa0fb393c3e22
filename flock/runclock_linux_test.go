package flock

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func bootTime(t *testing.T) time.Duration {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// TestRunClockIsBootTime: the run clock, carried by Go's monotonic reading
// between reads of CLOCK_BOOTTIME, shows CLOCK_BOOTTIME: never ahead of
// it, and behind it by no more than the reads between.
func TestRunClockIsBootTime(t *testing.T) {
	for i := range 50 {
		before := bootTime(t)
		run, ok := systemRunClock(time.Now())
		after := bootTime(t)
		if !ok {
			t.Fatal("systemRunClock() failed")
		}
		if run > after || run < before-time.Millisecond {
			t.Fatalf("read %d: the run clock shows %v between CLOCK_BOOTTIME readings %v and %v", i, run, before, after)
		}
		time.Sleep(time.Duration(i) * 200 * time.Microsecond)
	}
}
