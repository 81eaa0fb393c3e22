package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// supervise waits for the command to end and returns its exit status, why
// nfsflock ended it (nil if it ended by itself) and any error from waiting
// for it. nfsflock ends the command, as end does, when:
//
//   - ctx ends: the lock was lost, and context.Cause(ctx) says why;
//   - the command stays stopped for longer than stopLimit, the lock's
//     lifetime, by a stop that nfsflock does not share (stopLimited).
//     nfsflock refreshes the lock all the while, and would keep a stopped
//     command's lock for ever; the command is ended rather than the lock
//     let go, since whoever stopped it may continue it;
//   - nfsflock, which stopped itself with its command (^Z under a shell's
//     job control: stopJob), is continued and confirm cannot confirm that
//     the lock is still its own. The command is not continued, not even
//     until the next refresh: it gets SIGTERM before it runs again.
//
// Job-control signals that nfsflock itself gets while the command runs
// (j.stops.signals) go to jobSignal; at each tick of j.stops.foreground,
// handTerminal passes the terminal on to the command if nfsflock has it.
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
		case sig := <-j.stops.signals:
			j.jobSignal(sig)
		case <-j.stops.foreground:
			j.handTerminal()
		case <-j.stops.changed:
			count, stopped, sig := j.stops.now()
			kind := j.stopKind(sig)
			switch {
			case !stopped:
				if limit != nil {
					limit.Stop()
					expired = nil
				}
			case count == handled:
			case kind == stopIgnored:
				handled = count
				j.ignoreStop()
			case kind == stopJob:
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

// How supervise deals with a stop of the command (job.stopKind).
type stopKind int

const (
	// stopLimited: nfsflock keeps the lock refreshed while the command is
	// stopped, for stopLimit at most (a stop by SIGSTOP, or one without a
	// shell's job control above nfsflock).
	stopLimited stopKind = iota
	// stopJob: nfsflock stops too, as a job does, and confirms the lock
	// before it continues the command (^Z, or the terminal read or
	// written from the background, under a shell's job control).
	stopJob
	// stopIgnored: the command is continued at once (^Z where no shell
	// could continue the job, which the system ignores for nfsflock).
	stopIgnored
)

// jobStops is what the goroutine that waits for the command has learned
// of its stops and continues, for supervise, and the job-control signals
// that nfsflock itself gets while the command runs.
type jobStops struct {
	changed chan struct{}  // holds a value once the fields below change; nil where commands do not stop
	signals chan os.Signal // SIGTSTP and SIGCONT caught while the command runs; nil where none are
	// foreground ticks while the command runs where nfsflock hands it the
	// terminal: a shell's fg of a job that runs in the background gives
	// the terminal to nfsflock's group without a signal. nil elsewhere.
	foreground <-chan time.Time

	mu      sync.Mutex
	count   int            // how many times the command has stopped
	stopped bool           // whether it is stopped now
	sig     syscall.Signal // the signal that stopped it last
}

// record notes that the command stopped, by signal sig, or that it was
// continued.
func (s *jobStops) record(stopped bool, sig syscall.Signal) {
	s.mu.Lock()
	if stopped {
		s.count++
		s.sig = sig
	}
	s.stopped = stopped
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default: // supervise has yet to look at an earlier change
	}
}

// now reports how many times the command has stopped, whether it is
// stopped now, and by which signal it stopped last.
func (s *jobStops) now() (count int, stopped bool, sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.stopped, s.sig
}
