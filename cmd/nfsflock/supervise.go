package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// supervise waits for the command to end and returns its exit status, why
// nfsflock ended it (nil if it ended by itself) and any error from waiting
// for it. nfsflock ends the command, as end does, when:
//
//   - ctx ends: the lock was lost, and context.Cause(ctx) says why;
//   - the command stays stopped for longer than stopLimit, the lock's
//     lifetime. nfsflock refreshes the lock all the while, and would keep a
//     stopped command's lock for ever; the command is ended rather than the
//     lock let go, since whoever stopped it may continue it;
//   - nfsflock, which stopped itself with its command (^Z, under job
//     control), is continued and confirm cannot confirm that the lock is
//     still its own. The command is not continued, not even until the next
//     refresh: it gets SIGTERM before it runs again.
func (j *job) supervise(ctx context.Context, grace, stopLimit time.Duration, confirm func() error) (status int, why, err error) {
	var (
		handled int // the stops dealt with
		limit   *time.Timer
		expired <-chan time.Time // limit's channel while it runs
	)
	defer func() {
		if limit != nil {
			limit.Stop()
		}
	}()
	for why == nil {
		select {
		case <-j.exited:
			return j.status, nil, j.err
		case <-ctx.Done():
			why = context.Cause(ctx)
		case <-expired:
			why = stoppedError{stopLimit}
		case <-j.stops.changed:
			count, stopped := j.stops.now()
			switch {
			case !stopped:
				if limit != nil {
					limit.Stop()
					expired = nil
				}
			case count == handled:
			case j.jobControl():
				handled = count
				j.suspend()
				if err := confirm(); err != nil {
					why = err
					break
				}
				j.resume()
			default:
				handled = count
				if limit == nil {
					limit = time.NewTimer(stopLimit)
				} else {
					limit.Reset(stopLimit)
				}
				expired = limit.C
			}
		}
	}
	j.end(grace)
	return j.status, why, j.err
}

// end stops the command's process group: SIGTERM, delivered before a
// stopped command runs again, then SIGKILL to whatever of the group is
// left once grace has passed, so that nothing the command started goes on
// without the lock. It returns once the command has been reaped.
func (j *job) end(grace time.Duration) {
	j.terminate()
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	exited := j.exited
wait:
	for {
		select {
		case <-exited:
			exited = nil
		case <-poll.C:
			if exited == nil && !j.groupAlive() {
				break wait
			}
		case <-deadline.C:
			break wait
		}
	}
	j.kill()
	<-j.exited
}

// stoppedError says that the command stayed stopped for longer than the
// lock's lifetime, and so was ended.
type stoppedError struct{ limit time.Duration }

func (e stoppedError) Error() string {
	return fmt.Sprintf("stopped for longer than the lock's lifetime (%v)", e.limit)
}

// jobStops is what the goroutine that waits for the command has learned
// of its stops and continues, for supervise.
type jobStops struct {
	changed chan struct{} // holds a value once the fields below change; nil where commands do not stop

	mu      sync.Mutex
	count   int  // how many times the command has stopped
	stopped bool // whether it is stopped now
}

// record notes that the command stopped, or that it was continued.
func (s *jobStops) record(stopped bool) {
	s.mu.Lock()
	if stopped {
		s.count++
	}
	s.stopped = stopped
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default: // supervise has yet to look at an earlier change
	}
}

// now reports how many times the command has stopped, and whether it is
// stopped now.
func (s *jobStops) now() (count int, stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.stopped
}
