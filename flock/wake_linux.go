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

// A waiter on a local filesystem is woken when the lock file it waits
// for leaves the lock's name, through an inotify watch on that file (its
// inode, not the directory: a directory watch would wake every waiter at
// each claim created or removed beside the lock, several times a cycle).
// The wake only ends the sleep between two attempts early; every attempt
// is the same protocol call, and the backoff timer still bounds each
// sleep, so a lost event costs time, never safety. On a network filesystem
// a waiter polls.
//
// A woken waiter first looks whether a lock file stands at the name
// again, another waiter having won (it tries to watch whatever is there):
// then it watches that one and sleeps on, rather than make an attempt
// bound to fail.

// wakeSpread is the widest random delay between a notified release and
// the look it starts, for a waiter that has lost a race for the lock
// after an earlier wake: that tells of a crowd. A waiter's first wake
// looks at once, so a lone waiter is not slowed. The waiters of a crowd
// spread their looks over wakeSpread, and the winner's lock file is
// usually in place by the time most of them look: a crowd takes the lock
// without a stampede of failed links at every release. (A delay on every
// wake costs a lone waiter more than a millisecond on a busy machine,
// where a timer wakes late. Go's timers round a delay under a millisecond
// up to about one in an idle process, so in practice a crowd looks about
// a millisecond after a release: docs/BENCHMARKS.md.)
const wakeSpread = time.Millisecond

// What an inotify event tells a waiter.
const (
	wakeNone = iota
	wakeGone // the watched lock file left the name, or changed: look again
	wakeExit // the holder's process exited (WithDeadOwnerBreak)
)

// watchMask is what wakes a waiter about the lock file it watches: moved
// away (our releases, breakers), its last name removed, or a change of
// its attributes, which is how a release by unlink shows while the
// holder's claim still names the file (flufl.lock), and which a refresh
// causes too (a wasted look, no more). One event is all a waiter needs of
// a file (IN_ONESHOT): the look it starts watches the file then at the
// name, and the rest of a release's events (the unlink of the file moved
// aside, then of the claim) wake nobody.
const watchMask = unix.IN_MOVE_SELF | unix.IN_DELETE_SELF | unix.IN_ATTRIB | unix.IN_DONT_FOLLOW | unix.IN_ONESHOT

// watch is an inotify instance for one wait, watching the lock file that
// stands at the lock's name. Its reader goroutine turns events on the
// file watched last into a signal on events, keeping only the latest.
type watch struct {
	l      *Lock
	f      *os.File
	fd     int
	wd     atomic.Int32 // the watch descriptor of the file watched now; 0 for none
	events chan int
	done   chan struct{} // closed when the reader returns
	woken  bool          // the last sleep ended at a notified release
	lost   bool          // an attempt after a notified release failed
	empty  int           // sleeps in a row that found no file to watch
	holder *exitWatch    // the holder's process, with WithDeadOwnerBreak
}

// watch starts an inotify instance for the rest of this wait, or returns
// nil where the wait polls instead: a test's filesystem, a network
// filesystem, or a system that refuses inotify.
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
	// A non-blocking descriptor joins the runtime's poller, so a read
	// waits without a thread and a read deadline ends it.
	w := &watch{l: l, f: os.NewFile(uintptr(fd), "inotify"), fd: fd, events: make(chan int, 1), done: make(chan struct{})}
	go w.read()
	return w
}

// What arm finds at the lock's name.
const (
	armWatched = iota // a file, now watched
	armGone           // no file: the lock may be free
	armBlind          // a file that cannot be watched (not readable by us), or a name that would not hold still
)

// arm watches the file at the lock's name now. A file that replaced the
// one watched before gets a watch of its own, and events about earlier
// ones are ignored from then on: watch descriptors are handed out in
// increasing order, so an event of a lower one than the current is stale.
// (Only from then on: an event of the new watch may be read before arm
// has noted its descriptor, and must not be lost; one of an earlier watch
// read meanwhile costs a look.)
//
// inotify_add_watch looks the path up, then attaches its watch: a file
// that left the name in between is watched, but its leaving was never
// seen. A second call that finds the same watch proves that the file
// stood at the name after the watch was attached. A name that changes
// under every try is not watched this time: the sleep polls.
func (w *watch) arm() int {
	wd, err := unix.InotifyAddWatch(w.fd, w.l.path, watchMask)
	for range 8 {
		if err != nil {
			break
		}
		again, aerr := unix.InotifyAddWatch(w.fd, w.l.path, watchMask)
		if aerr == nil && again == wd {
			w.wd.Store(int32(wd))
			return armWatched
		}
		// Gone already if its one event fired (EINVAL).
		unix.InotifyRmWatch(w.fd, uint32(wd))
		wd, err = again, aerr
	}
	switch {
	case err == nil:
		unix.InotifyRmWatch(w.fd, uint32(wd)) // never proven
	case errors.Is(err, unix.ENOENT):
		return armGone
	}
	return armBlind
}

// read passes on what the events say about the watched file until the
// file's read deadline passes.
func (w *watch) read() {
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
		if k := parseEvents(buf[:n], w.wd.Load()); k != wakeNone {
			w.signal(k)
		}
	}
}

// parseEvents returns wakeGone if buf holds an event of the watch whose
// descriptor is cur or a later one, or a queue overflow, which may have
// lost one.
func parseEvents(buf []byte, cur int32) int {
	k := wakeNone
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 || ev.Wd >= cur {
			k = wakeGone
		}
		buf = buf[end:]
	}
	return k
}

// signal replaces whatever signal is pending with k; only the latest
// matters, but an exit is not overwritten by a change.
func (w *watch) signal(k int) {
	for {
		select {
		case w.events <- k:
			return
		default:
		}
		select {
		case old := <-w.events:
			k = max(k, old)
		default:
		}
	}
}

// sleep is [retry.Sleep] that may end sooner: when no lock file stands at
// the name (after a random delay of up to wakeSpread once the waiter has
// lost a race after a wake), as seen at the start and at each notified
// change of the file watched; or at the lock file's expiry plus the clock
// slop, when that comes first, so that an expired lock is broken when the
// rules allow; or, with WithDeadOwnerBreak, at its holder's exit.
func (w *watch) sleep(ctx context.Context, clock retry.Clock, d time.Duration, wake <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if w.woken {
		w.lost = true // the attempt that followed the wake failed
	}
	w.woken = false
	// How long to sleep: the backoff's delay, or less when the file at
	// the name may be broken sooner (due, if ok). Where a release wakes
	// us (watched), the backoff's timer is only a safety net, and need
	// not wake a crowd of waiters several times a second; where it does
	// not, or where no expiry is ahead (no file, or one that may be broken
	// already, whose break the attempt just made could not complete:
	// another breaker's lock in the way, whose end nothing at the lock's
	// name tells), look again within watchedPoll.
	sleepFor := func(due time.Duration, ok, watched bool) time.Duration {
		switch {
		case ok && watched:
			return min(due, max(d, watchedPoll))
		case ok:
			return min(due, d, watchedPoll)
		default:
			return min(d, watchedPoll)
		}
	}
	watched := false
	switch w.arm() {
	case armGone:
		// Nothing to wait for: attempt now. The attempt just made failed,
		// so the lock was released since: others are making progress. A
		// pause of wakeSpread every few such turns keeps this from
		// spinning should lock files come and go faster than we look.
		if w.empty++; w.empty%8 != 0 {
			return nil
		}
		d = min(d, wakeSpread)
	case armWatched:
		w.empty, watched = 0, true
	}
	due, ok := w.hint()
	t := clock.NewTimer(sleepFor(due, ok, watched))
	defer func() { t.Stop() }()
	var spread <-chan time.Time
	var st retry.Timer
	defer func() {
		if st != nil {
			st.Stop()
		}
	}()
	// look watches the file now at the name, if any, and reports whether
	// the sleep goes on: another waiter won, and its lock file is watched.
	// A file there that may be broken already (one that replaced the file
	// watched) is left to an attempt now.
	look := func() bool {
		k := w.arm()
		if k == armGone {
			w.woken = true
			return false
		}
		due, ok := w.hint()
		if !ok {
			return false
		}
		t.Stop()
		t = clock.NewTimer(sleepFor(due, ok, k == armWatched))
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-wake:
			return nil
		case <-t.C():
			return nil
		case <-spread:
			st, spread = nil, nil
			if !look() {
				return nil
			}
		case k := <-w.events:
			switch {
			case k == wakeExit:
				return nil
			case !w.lost:
				if !look() {
					return nil
				}
			case spread == nil:
				s := clock.NewTimer(rand.N(wakeSpread))
				st, spread = s, s.C()
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
		if l.deadHolder(s.contents) {
			// Breakable already: its break was refused (another
			// breaker at work), and nothing at the name will change.
			return 0, false
		}
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
			w.signal(wakeExit)
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
