// Package retry decides how long a waiter sleeps between attempts to take a
// lock: exponential backoff with jitter and a cap, woken at once when its
// context ends.
package retry

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy describes an exponential backoff: the first delay is Initial, each
// later one is Multiplier times the one before, up to Max; then each is
// spread at random by ±Jitter, a fraction of it. So a delay lies between
// (1-Jitter) and (1+Jitter) times its unspread value, and may exceed Max
// by up to Jitter times Max.
//
// The zero Policy is not valid; start from [Default] or [Constant].
type Policy struct {
	Initial    time.Duration // first delay before jitter; > 0
	Max        time.Duration // cap on the delay before jitter; >= Initial
	Multiplier float64       // growth per attempt; >= 1
	Jitter     float64       // randomization factor in [0, 1)
}

// Default returns the policy a lock uses unless told otherwise: 1 ms
// doubling to a cap of 200 ms, each delay spread at random by ±50%. Once at
// the cap, a waiter retries every 100 to 300 ms, 200 ms on average: it
// notices a released lock within 300 ms even when nothing wakes it sooner,
// and a crowd of waiters does not retry in lockstep.
//
// A Lock on one of Linux's local filesystems, where an inotify watch wakes
// its waiters, retries no more often than every 2 s, whatever its policy:
// the retries there are only a safety net (see flock's Lock.Acquire).
//
// Across the clients of a network filesystem nothing wakes a waiter, so
// the cap sets the load that waiting puts on the server: 100 waiters at
// the cap make about 500 attempts a second together, each about eight
// calls on the filesystem (re-time the claim, link it, then look up,
// open, stat, read and close the lock file): some 4,000 requests a
// second, fewer where the client's caches answer. A larger crowd, or a
// weaker server, calls for a larger Max.
func Default() Policy {
	return Policy{Initial: time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0.5}
}

// Constant returns a policy that waits exactly d between attempts, with no
// jitter.
func Constant(d time.Duration) Policy {
	return Policy{Initial: d, Max: d, Multiplier: 1}
}

// ErrInvalid is wrapped by the error that [Policy.Validate] returns for a
// policy that cannot be used.
var ErrInvalid = errors.New("retry: invalid policy")

// Validate returns nil if p can be used, and otherwise an error wrapping
// [ErrInvalid] that says which field is wrong.
func (p Policy) Validate() error {
	switch {
	case p.Initial <= 0:
		return fmt.Errorf("%w: Initial %v must be positive", ErrInvalid, p.Initial)
	case p.Max < p.Initial:
		return fmt.Errorf("%w: Max %v is less than Initial %v", ErrInvalid, p.Max, p.Initial)
	case !(p.Multiplier >= 1): // also rejects NaN
		return fmt.Errorf("%w: Multiplier %v must be at least 1", ErrInvalid, p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter < 1):
		return fmt.Errorf("%w: Jitter %v must be in [0, 1)", ErrInvalid, p.Jitter)
	case float64(p.Max)*(1+p.Jitter) >= math.MaxInt64:
		return fmt.Errorf("%w: Max %v spread by Jitter %v exceeds the longest time.Duration", ErrInvalid, p.Max, p.Jitter)
	}
	return nil
}

// Schedule hands out the delays of one wait, in order. It is not safe for
// concurrent use; each wait takes its own from [Policy.Schedule].
type Schedule struct {
	b *backoff.ExponentialBackOff
}

// Schedule starts a new sequence of delays. p must be valid (see
// [Policy.Validate]).
func (p Policy) Schedule() *Schedule {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(0), // a lock waiter gives up through its context, not here
	)
	return &Schedule{b: b}
}

// Next returns the next delay of the sequence.
func (s *Schedule) Next() time.Duration {
	return s.b.NextBackOff()
}

// Reset starts the sequence again from the first delay.
func (s *Schedule) Reset() {
	s.b.Reset()
}
