package flock

import (
	"testing"
	"time"
)

// TestStampBounds: the bounds on the filesystem's now enclose every moment
// the stamp allows, grow with the time since the sample (plus drift), and
// never run back before the stamp, even when the Lock's clock does.
func TestStampBounds(t *testing.T) {
	before := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	after := before.Add(3 * time.Millisecond)
	stamp := before.Add(time.Minute + time.Millisecond) // the filesystem a minute ahead
	s := stampSample{before: before, after: after, stamp: stamp, grain: stampGrain}
	for _, tt := range []struct {
		name   string
		now    time.Time
		lo, hi time.Time
	}{
		{"at once", after, stamp, stamp.Add(stampGrain + 3*time.Millisecond)},
		{"10 s on", after.Add(10 * time.Second), stamp.Add(10*time.Second - 10*time.Millisecond), stamp.Add(stampGrain + 3*time.Millisecond + 10*time.Second + 10*time.Millisecond)},
		{"the clock set back an hour", after.Add(-time.Hour), stamp, stamp.Add(stampGrain)},
	} {
		lo, hi := s.bounds(tt.now)
		if !lo.Equal(tt.lo) || !hi.Equal(tt.hi) {
			t.Errorf("%s: bounds = [%v, %v]; want [%v, %v]", tt.name, lo, hi, tt.lo, tt.hi)
		}
	}
	// A whole-second stamp (sshfs) may stand for any moment of its second.
	whole := stampSample{before: before, after: after, stamp: stamp.Truncate(time.Second), grain: time.Second}
	if lo, hi := whole.bounds(after); hi.Sub(lo) < time.Second {
		t.Errorf("whole-second stamp: bounds [%v, %v] narrower than its second", lo, hi)
	}
}
