package retry_test

import (
	"math"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/retry"
)

// TestMisuseExtremePolicies: every policy that Validate accepts yields
// delays within its documented bounds, forever (no overflow, no negative).
func TestMisuseExtremePolicies(t *testing.T) {
	max := time.Duration(float64(math.MaxInt64) / 2.1)
	for _, p := range []retry.Policy{
		{Initial: 1, Max: 1, Multiplier: 1},
		{Initial: 1, Max: max, Multiplier: math.Inf(1), Jitter: 0.999999},
		{Initial: 1, Max: max, Multiplier: math.MaxFloat64, Jitter: 0.5},
		{Initial: max, Max: max, Multiplier: 1e9, Jitter: 0.9999},
		{Initial: time.Millisecond, Max: time.Duration(math.MaxInt64 / 2), Multiplier: 1.0000001, Jitter: 0.999},
		{Initial: 1, Max: math.MaxInt64 - 1, Multiplier: 3},
	} {
		if err := p.Validate(); err != nil {
			t.Logf("%+v: %v", p, err)
			continue
		}
		s := p.Schedule()
		hi := time.Duration(float64(p.Max) * (1 + p.Jitter))
		for i := range 200 {
			d := s.Next()
			if d < 0 || d > hi+1 {
				t.Errorf("%+v: delay %d = %v, out of [0, %v]", p, i, d, hi)
				break
			}
		}
	}
}
