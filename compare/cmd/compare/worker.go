package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/compare"
	nfsflock "github.com/nfsflock/nfsflock/flock"
)

// A worker is one process that takes a lock for the comparison, driven by
// lines on its stdin; each answer is one line on its stdout, "ok ..." or
// "err ...". The Go peers run in this binary (-worker); flufl.lock and
// proper-lockfile have workers of their own that speak the same lines
// (workers/flufl_worker.py, workers/proper_worker.js):
//
//	cycles N fresh|reuse  N uncontended acquire+release; "ok <ns>" for all
//	acquire               "ok <monotonic ns> <wall ns>" once held
//	release               "ok <monotonic ns>" once released
//	take K HOLD_US        K acquisitions, each held HOLD_US µs; "ok t1,t2 ..."
//	                      with the monotonic times each acquire and release returned
//	quit                  exit
//
// Times are CLOCK_MONOTONIC, which every process on the host shares.

// locker is what a Go worker needs from a peer.
type locker interface {
	acquire() error
	release() error
}

type workerConfig struct {
	peer      string
	path      string
	lifetime  time.Duration
	slop      time.Duration
	deadOwner bool
}

func (c workerConfig) newLocker() (locker, error) {
	switch c.peer {
	case "nfsflock":
		opts := []nfsflock.Option{nfsflock.WithLifetime(c.lifetime), nfsflock.WithClockSlop(c.slop)}
		if c.deadOwner {
			opts = append(opts, nfsflock.WithDeadOwnerBreak())
		}
		l, err := nfsflock.New(c.path, opts...)
		if err != nil {
			return nil, err
		}
		return nfsLocker{l}, nil
	case "gofrs":
		return gofrsLocker{flock.New(c.path)}, nil
	case "raw":
		return &rawLocker{path: c.path, lifetime: c.lifetime}, nil
	}
	return nil, fmt.Errorf("no Go peer %q", c.peer)
}

type nfsLocker struct{ l *nfsflock.Lock }

func (n nfsLocker) acquire() error { return n.l.Acquire(context.Background()) }
func (n nfsLocker) release() error { return n.l.Release() }
func (n nfsLocker) close()         { n.l.Close() }

type gofrsLocker struct{ l *flock.Flock }

func (g gofrsLocker) acquire() error { return g.l.Lock() }
func (g gofrsLocker) release() error { return g.l.Unlock() }
func (g gofrsLocker) close()         { g.l.Close() }

// rawLocker only runs whole cycles: the baseline has no waiting.
type rawLocker struct {
	path     string
	lifetime time.Duration
}

func (r *rawLocker) acquire() error { return fmt.Errorf("raw: no acquire alone") }
func (r *rawLocker) release() error { return fmt.Errorf("raw: no release alone") }

func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// runWorker answers commands on stdin until quit or EOF.
func runWorker(c workerConfig) {
	l, err := c.newLocker()
	if err != nil {
		fmt.Println("err", err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	fail := func(err error) { reply("err %s", strings.ReplaceAll(err.Error(), "\n", " ")) }
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "cycles":
			n, _ := strconv.Atoi(f[1])
			ns, err := c.cycles(l, n, f[2] == "reuse")
			if err != nil {
				fail(err)
				continue
			}
			reply("ok %d", ns)
		case "acquire":
			if err := l.acquire(); err != nil {
				fail(err)
				continue
			}
			reply("ok %d %d", monotonic(), time.Now().UnixNano())
		case "release":
			if err := l.release(); err != nil {
				fail(err)
				continue
			}
			reply("ok %d", monotonic())
		case "take":
			k, _ := strconv.Atoi(f[1])
			holdUs, _ := strconv.Atoi(f[2])
			var b strings.Builder
			for range k {
				if err := l.acquire(); err != nil {
					fail(err)
					break
				}
				t1 := monotonic()
				if holdUs > 0 {
					time.Sleep(time.Duration(holdUs) * time.Microsecond)
				}
				if err := l.release(); err != nil {
					fail(err)
					break
				}
				fmt.Fprintf(&b, " %d,%d", t1, monotonic())
			}
			reply("ok%s", b.String())
		case "quit":
			return
		default:
			reply("err unknown command %q", f[0])
		}
	}
}

// cycles runs n uncontended cycles and returns the time they took. With
// reuse it keeps one lock object; otherwise it makes one per cycle, as
// guard.Do does.
func (c workerConfig) cycles(l locker, n int, reuse bool) (int64, error) {
	if r, ok := l.(*rawLocker); ok {
		claim := compare.RawClaim(r.path)
		start := time.Now()
		for range n {
			if err := compare.RawCycle(r.path, claim, r.lifetime); err != nil {
				return 0, err
			}
		}
		return int64(time.Since(start)), nil
	}
	start := time.Now()
	for range n {
		cur := l
		if !reuse {
			var err error
			if cur, err = c.newLocker(); err != nil {
				return 0, err
			}
		}
		if err := cur.acquire(); err != nil {
			return 0, err
		}
		if err := cur.release(); err != nil {
			return 0, err
		}
		if !reuse {
			cur.(interface{ close() }).close()
		}
	}
	return int64(time.Since(start)), nil
}
