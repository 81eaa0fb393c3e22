package flock

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/retry"
)

// A waiter on a local filesystem is woken when the lock file leaves its
// directory, through inotify on that directory. The wake only ends the
// sleep between two attempts early; every attempt is the same protocol
// call, and the backoff timer still bounds each sleep, so a lost event
// costs time, never safety. On a network filesystem a waiter polls.

// wakeSpread is the widest random delay between a notified release and
// the attempt it starts, for a waiter that has lost a race for the lock
// after an earlier wake: that tells of a crowd. A waiter's first wake
// starts its attempt at once, so a lone waiter is not slowed. The waiters
// of a crowd spread their attempts over wakeSpread, and one still within
// its delay when the lock file appears again (another waiter has won)
// does not attempt at all, and waits for the next release: a crowd takes
// the lock without a stampede of failed links at every release. (A delay
// on every wake costs a lone waiter more than a millisecond on a busy
// machine, where a timer wakes late.)
const wakeSpread = time.Millisecond

// What a batch of inotify events says about the lock's name.
const (
	wakeNone  = iota
	wakeGone  // removed or moved away: the lock may be free
	wakeTaken // created or moved in: someone holds it again
)

// watch is an inotify watch on the lock's directory, for one wait. Its
// reader goroutine turns events on the lock's name into a signal on
// events, keeping only the latest.
type watch struct {
	l      *Lock
	f      *os.File
	events chan int
	done   chan struct{} // closed when the reader returns
	woken  bool          // the last sleep ended at a notified release
	lost   bool          // an attempt after a notified release failed
	holder *exitWatch    // the holder's process, with WithDeadOwnerBreak
}

// watch starts watching the lock's directory for the rest of this wait,
// or returns nil where the wait polls instead: a test's filesystem, a
// network filesystem, or a directory inotify refuses.
func (l *Lock) watch() *watch {
	// On a network or cluster filesystem inotify sees only the changes
	// made through this host's mount, and each attempt is a round trip to
	// a server: waiters woken together by a local release would crowd the
	// server (and, on sshfs, meet its lookup races) at once, where polling
	// spreads them. Such a wait polls, as it does across hosts.
	if l.cfg.fs != fsys.OS || !fsys.Local(l.dir) {
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, l.dir, mask); err != nil {
		unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor joins the runtime's poller, so a read
	// waits without a thread and a read deadline ends it.
	w := &watch{l: l, f: os.NewFile(uintptr(fd), "inotify"), events: make(chan int, 1), done: make(chan struct{})}
	go w.read(l.base)
	return w
}

// read passes on what the events say about name until the file's read
// deadline passes.
func (w *watch) read(name string) {
	defer close(w.done)
	var buf [4096]byte
	for {
		n, err := w.f.Read(buf[:])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return
			}
			// Anything else ends the watch, and the waiter polls.
			w.signal(wakeGone)
			return
		}
		if k := parseEvents(buf[:n], name); k != wakeNone {
			w.signal(k)
		}
	}
}

// parseEvents returns what the last event on name in buf says, or
// wakeGone after a queue overflow, which may have lost a removal.
func parseEvents(buf []byte, name string) int {
	k := wakeNone
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		switch {
		case ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED) != 0:
			k = wakeGone
		case eventName(buf[unix.SizeofInotifyEvent:end]) != name:
		case ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
			k = wakeGone
		case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			k = wakeTaken
		}
		buf = buf[end:]
	}
	return k
}

// eventName is an event's name without its NUL padding.
func eventName(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// signal replaces whatever signal is pending with k; only the latest
// matters.
func (w *watch) signal(k int) {
	for {
		select {
		case w.events <- k:
			return
		default:
		}
		select {
		case <-w.events:
		default:
		}
	}
}

// sleep is [retry.Sleep] that may end sooner: at a notified release (plus
// a random delay of up to wakeSpread once the waiter has lost a race after
// a wake), unless the lock is taken again within that delay; or at the lock file's expiry plus the clock slop,
// when that comes first, so that an expired lock is broken when the rules
// allow.
func (w *watch) sleep(ctx context.Context, clock retry.Clock, d time.Duration, wake <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if w.woken {
		w.lost = true // the attempt that followed the wake failed
	}
	w.woken = false
	if due, ok := w.hint(); ok {
		// A release here wakes us, and due is when the lock may be
		// broken: the backoff's timer is only a safety net, and need
		// not wake a crowd of waiters several times a second.
		d = min(due, max(d, watchedPoll))
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	var spread <-chan time.Time
	var st retry.Timer
	defer func() {
		if st != nil {
			st.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-wake:
			return nil
		case <-t.C():
			return nil
		case <-spread:
			// A winner's link may be waiting to be read: it comes first.
			select {
			case k := <-w.events:
				if k == wakeTaken {
					st, spread = nil, nil
					continue
				}
			default:
			}
			w.woken = true
			return nil
		case k := <-w.events:
			switch {
			case k == wakeGone && !w.lost:
				w.woken = true
				return nil
			case k == wakeGone && spread == nil:
				s := clock.NewTimer(rand.N(wakeSpread))
				st, spread = s, s.C()
			case k == wakeTaken && spread != nil:
				st.Stop()
				st, spread = nil, nil
			}
		}
	}
}

// watchedPoll is the longest a watched waiter sleeps without an event,
// unless the lock may be broken sooner.
const watchedPoll = 2 * time.Second

// hint looks at the lock file between two attempts and returns how long
// until it may be broken, if that lies ahead and is known: its expiry plus
// the clock slop, or, with WithDeadOwnerBreak, soon after its holder's
// process on this host exits. It is a hint only (a network filesystem's
// attributes can be stale): the attempt that follows judges afresh.
func (w *watch) hint() (time.Duration, bool) {
	l := w.l
	var mtime time.Time
	if l.cfg.deadOwnerBreak {
		s, err := l.inspect(l.path)
		if err != nil {
			w.holder.stop()
			w.holder = nil
			return 0, false
		}
		mtime = s.info.ModTime
		w.watchHolder(s.contents)
	} else {
		info, err := l.cfg.fs.Lstat(l.path)
		if err != nil {
			return 0, false
		}
		mtime = info.ModTime
	}
	// A millisecond past the moment, as breakable asks for a time after it.
	// By the earliest the filesystem's clock can show, as breakable
	// judges (timebase.go).
	lo, _ := l.fsNow()
	d := mtime.Add(l.cfg.slop).Sub(lo) + time.Millisecond
	ok := d > time.Millisecond
	if h := w.holder; h != nil && h.exited.Load() {
		// The holder has exited, but it is not gone until its parent
		// reaps it: retry soon, backing off to the usual delays.
		soon := time.Millisecond << min(h.retries, 10)
		h.retries++
		if !ok || soon < d {
			d, ok = soon, true
		}
	}
	return d, ok
}

// watchHolder watches for the exit of the process that holds the lock
// (by contents), when it runs on this host in our pid namespace as far as
// its claim tells, as WithDeadOwnerBreak judges.
func (w *watch) watchHolder(contents []byte) {
	l := w.l
	name := string(bytes.TrimSpace(contents))
	d, ok := claim.Parse([]byte(name), l.cfg.sep)
	if tag, tagged := claim.TagOf(name, l.cfg.sep); !ok || d.Hostname != l.cfg.hostname || d.PID == l.pid || (tagged && tag != l.tag) {
		w.holder.stop()
		w.holder = nil
		return
	}
	if w.holder != nil && w.holder.pid == d.PID {
		return
	}
	w.holder.stop()
	w.holder = watchExit(d.PID, w)
}

// exitWatch waits for a process to exit, through a pidfd.
type exitWatch struct {
	pid     int
	f       *os.File
	done    chan struct{} // closed when the waiting goroutine returns
	exited  atomic.Bool
	retries int // sleeps shortened since the exit
}

// watchExit starts waiting for pid's exit, and signals w at it. It
// returns nil where pidfds are not available or pid runs no process.
func watchExit(pid int, w *watch) *exitWatch {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	e := &exitWatch{pid: pid, f: f, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		// A pidfd turns readable when its process exits; RawConn.Read
		// waits for that when the function reports it is not done.
		polled := false
		err := rc.Read(func(uintptr) bool {
			done := polled
			polled = true
			return done
		})
		if err == nil {
			e.exited.Store(true)
			w.signal(wakeGone)
		}
	}()
	return e
}

// stop ends the wait for the exit. A nil exitWatch is a no-op.
func (e *exitWatch) stop() {
	if e == nil {
		return
	}
	e.f.SetReadDeadline(time.Unix(1, 0))
	<-e.done
	e.f.Close()
}

// stop ends the watch: the reader returns at once, and the descriptor is
// closed in the background, because closing an inotify descriptor waits
// for the kernel (milliseconds) and would delay the caller, an Acquire
// that has just taken the lock. That goroutine makes one system call and
// ends. A nil watch is a no-op.
func (w *watch) stop() {
	if w == nil {
		return
	}
	w.holder.stop()
	w.f.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	go w.f.Close()
}
