package flock

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
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

// aheadClock is the system clock set d ahead, monotonic reading and all.
type aheadClock struct{ d time.Duration }

func (c aheadClock) Now() time.Time                       { return time.Now().Add(c.d) }
func (c aheadClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// TestSkewWarnedOnce: a host whose clock is a minute off the filesystem's
// logs one Warn line naming the offset, once per directory and process,
// however many Locks it makes there; and Inspect reports the offset.
func TestSkewWarnedOnce(t *testing.T) {
	dir := testenv.TempDir(t) // t.TempDir's cleanup fails under Wine
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for range 3 {
		l, err := New(filepath.Join(dir, "app.lck"), WithClock(aheadClock{time.Minute}), WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, err := l.Inspect()
		if err != nil || st.ClockOffset > -59*time.Second || st.ClockOffset < -61*time.Second || st.FarAhead {
			t.Errorf("Inspect() = ClockOffset %v, FarAhead %v, %v; want about -1m, false", st.ClockOffset, st.FarAhead, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "offset=-1m0") && !strings.Contains(logs.String(), "offset=-59.9") {
		t.Errorf("%d Warn lines; want 1 naming an offset of about -1m:\n%s", n, logs.String())
	}
}
