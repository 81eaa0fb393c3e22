package retry_test

import (
	"fmt"
	"time"

	"github.com/nfsflock/nfsflock/retry"
)

// A policy without jitter gives the same delays every time.
func ExamplePolicy_Schedule() {
	p := retry.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2}
	if err := p.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	s := p.Schedule()
	for range 5 {
		fmt.Println(s.Next())
	}
	// Output:
	// 10ms
	// 20ms
	// 40ms
	// 50ms
	// 50ms
}

// With jitter, each delay is spread around its unspread value, which may
// take it past Max.
func ExampleDefault() {
	p := retry.Default()
	s := p.Schedule()
	for range 20 { // well past the cap
		s.Next()
	}
	d := s.Next()
	lo := time.Duration(float64(p.Max) * (1 - p.Jitter))
	hi := time.Duration(float64(p.Max) * (1 + p.Jitter))
	fmt.Println(lo, hi, d >= lo && d <= hi)
	// Output: 100ms 300ms true
}

func ExamplePolicy_Validate() {
	err := retry.Policy{Initial: time.Second, Max: time.Millisecond, Multiplier: 2}.Validate()
	fmt.Println(err)
	// Output: retry: invalid policy: Max 1ms is less than Initial 1s
}
