package retry_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/retry"
)

func TestScheduleGrowsToCap(t *testing.T) {
	p := retry.Policy{Initial: time.Millisecond, Max: 8 * time.Millisecond, Multiplier: 2}
	s := p.Schedule()
	var got []time.Duration
	for range 6 {
		got = append(got, s.Next())
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays = %v; want %v ms", got, want)
		}
	}
	s.Reset()
	if d := s.Next(); d != time.Millisecond {
		t.Errorf("after Reset, Next() = %v", d)
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	p := retry.Default()
	s := p.Schedule()
	for i := range 100 {
		d := s.Next()
		if d <= 0 || d > time.Duration(float64(p.Max)*(1+p.Jitter)) {
			t.Fatalf("delay %d = %v; out of bounds for %+v", i, d, p)
		}
	}
}

// The longest valid policy's delays stay positive and within bounds.
func TestLongestPolicyStaysInBounds(t *testing.T) {
	p := retry.Policy{Initial: time.Hour, Max: math.MaxInt64 / 2, Multiplier: 10, Jitter: 0.9}
	if err := p.Validate(); err != nil {
		t.Fatalf("%+v.Validate() = %v", p, err)
	}
	s := p.Schedule()
	for i := range 40 {
		if d := s.Next(); d <= 0 || d > time.Duration(float64(p.Max)*(1+p.Jitter)) {
			t.Fatalf("delay %d = %v; out of bounds for %+v", i, d, p)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := retry.Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if err := retry.Constant(time.Second).Validate(); err != nil {
		t.Errorf("Constant(1s).Validate() = %v", err)
	}
	for _, p := range []retry.Policy{
		{},
		{Initial: -1, Max: 1, Multiplier: 1},
		{Initial: 2, Max: 1, Multiplier: 1},
		{Initial: 1, Max: 1, Multiplier: 0.5},
		{Initial: 1, Max: 1, Multiplier: 1, Jitter: 1},
		{Initial: 1, Max: 1, Multiplier: 1, Jitter: -0.1},
		// Spread, the cap would overflow a Duration into negative delays.
		{Initial: time.Hour, Max: 200 * 365 * 24 * time.Hour, Multiplier: 10, Jitter: 0.9},
	} {
		if err := p.Validate(); !errors.Is(err, retry.ErrInvalid) {
			t.Errorf("%+v.Validate() = %v; want ErrInvalid", p, err)
		}
	}
}

func TestSleepWokenByContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("stop")
	done := make(chan error)
	go func() { done <- retry.Sleep(ctx, retry.SystemClock, time.Hour, nil) }()
	cancel(why)
	if err := <-done; err != why {
		t.Errorf("Sleep = %v; want the cause %v", err, why)
	}
}

func TestSleepWokenByWake(t *testing.T) {
	wake := make(chan struct{})
	done := make(chan error)
	go func() { done <- retry.Sleep(context.Background(), retry.SystemClock, time.Hour, wake) }()
	close(wake)
	if err := <-done; err != nil {
		t.Errorf("Sleep = %v; want nil", err)
	}
}
