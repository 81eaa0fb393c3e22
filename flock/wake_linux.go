package flock

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
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
// bound to fail. While the waiter sleeps, that look is made by the
// goroutine that reads the events, with raw system calls (all but a
// reading of the clocks at most once a second, timebase.go; the settling
// of an unlink that may be under way, see settle; and a stat where the
// system refuses statx): a waiter
// that sleeps on wakes no other goroutine, and no thread of the runtime's
// (an ordinary system call wakes the runtime's monitor thread in an
// idle process, which then polls every 20µs for a while). In a crowd
// every release wakes every waiter, and most of them only look, so the
// cost of a look is most of what waiting costs: docs/BENCHMARKS.md.

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
	wakeNone    = iota
	wakeLook    // the watched lock file left the name, or changed: the waiter looks again
	wakeAttempt // the reader looked, and the lock may be taken or broken: attempt now
	wakeExit    // the holder's process exited (WithDeadOwnerBreak)
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
// stands at the lock's name. Its reader goroutine reads the events on
// the file watched last; while the waiter sleeps, it looks on the
// waiter's behalf, and signals on events only what ends the sleep or
// needs the waiter (keeping only the latest signal).
type watch struct {
	l      *Lock
	f      *os.File
	fd     int
	wd     atomic.Int32 // the watch descriptor of the file watched now; 0 for none
	dirfd  int          // the lock's directory, opened for settle under mu; -1 until then
	events chan int
	done   chan struct{} // closed when the reader returns
	quit   chan struct{} // closed by stop: ends the reader's pause before a look
	holder *exitWatch    // the holder's process, with WithDeadOwnerBreak

	// mu is held by whoever looks (arms the watch and reads the file's
	// time): the waiter, or the reader while the waiter sleeps.
	mu        sync.Mutex
	sleeping  bool          // the waiter sleeps, and the reader may look for it
	d         time.Duration // the backoff's delay of this sleep
	deadline  time.Time     // when the waiter's timer fires, by the Lock's clock
	mtime     time.Time     // the watched file's, as arm found it; zero if unknown
	unsettled bool          // arm could not settle an unlink that may be under way
	noStatx   bool          // the system refuses statx: stat uses Lstat
	woken     bool          // the last sleep ended at a notified release
	lost      bool          // an attempt after a notified release failed
	empty     int           // sleeps in a row that found no file to watch
}

// watch starts an inotify instance for the rest of this wait, or returns
// nil where the wait polls instead. retry says whether to ask again at
// the next sleep: a system short of inotify instances (a user may have
// 128 by default, over all of their processes, and a crowd of waiters
// uses one each) may have one again by then, and meanwhile a sleep is cut
// to watchedPoll (unwatched). A test's filesystem, a network filesystem,
// or a system that refuses inotify for good polls with no retry.
func (l *Lock) watch() (w *watch, retry bool) {
	// On a network or cluster filesystem inotify sees only the changes
	// made through this host's mount, and each attempt is a round trip to
	// a server: waiters woken together by a local release would crowd the
	// server (and, on sshfs, meet its lookup races) at once, where polling
	// spreads them. Such a wait polls, as it does across hosts.
	if l.cfg.fs != fsys.OS || !fsys.Local(l.dir) {
		return nil, false
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		short := errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM)
		return nil, short
	}
	// A non-blocking descriptor joins the runtime's poller, so a read
	// waits without a thread and a read deadline ends it.
	w = &watch{l: l, f: os.NewFile(uintptr(fd), "inotify"), fd: fd, dirfd: -1, events: make(chan int, 1), done: make(chan struct{}), quit: make(chan struct{})}
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.f.Close()
		return nil, false
	}
	go w.read(rc)
	return w, true
}

// unwatched is the longest sleep of a wait that has no watch but asked
// for one (retry from watch): it looks again as often as a watched waiter
// does without an event.
func unwatched(d time.Duration) time.Duration { return min(d, watchedPoll) }

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
//
// That proof is not enough while an unlink of the name is under way: see
// settle. A file with fewer than two links (a lock file has its claim's
// name too, but for a no-links lock) may be one, so arm settles before it
// proves the watch.
//
// A watched file's modification time, read by the same look, is left in
// w.mtime (zero if no stat could tell it). The caller holds w.mu.
func (w *watch) arm() int {
	w.mtime, w.unsettled = time.Time{}, false
	path, err := unix.BytePtrFromString(w.l.path)
	if err != nil {
		return armBlind
	}
	settled := -1 // the watch descriptor last settled for: each is settled once
	wd, err := w.addWatch(path)
	for range 8 {
		if err != nil {
			break
		}
		// The stat comes between the two calls that prove the watch: if
		// both find the same watch, no event has fired on the file
		// watched, so it stood at the name throughout, and the stat read
		// it.
		nlink, mtime, ok := w.stat(path)
		if (!ok || nlink < 2) && settled != wd { // a link count unknown is settled too
			settled = wd
			w.unsettled = !w.settle()
			_, mtime, _ = w.stat(path)
		}
		again, aerr := w.addWatch(path)
		if aerr == nil && again == wd {
			w.mtime = mtime
			w.wd.Store(int32(wd))
			return armWatched
		}
		// Gone already if its one event fired (EINVAL).
		w.rmWatch(wd)
		wd, err = again, aerr
	}
	switch {
	case err == nil:
		w.rmWatch(wd) // never proven
	case errors.Is(err, unix.ENOENT):
		return armGone
	}
	return armBlind
}

// addWatch is inotify_add_watch(2) of path with watchMask, made as a raw
// system call, as are the reader's other system calls of a look: an
// ordinary one wakes the runtime's monitor thread in a process that was
// idle, and a look neither blocks (the path is on a local filesystem, and
// was looked up a moment ago) nor starts anything the runtime must know
// of.
func (w *watch) addWatch(path *byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_INOTIFY_ADD_WATCH, uintptr(w.fd), uintptr(unsafe.Pointer(path)), watchMask)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// rmWatch is inotify_rm_watch(2), raw as addWatch is.
func (w *watch) rmWatch(wd int) {
	unix.RawSyscall(unix.SYS_INOTIFY_RM_WATCH, uintptr(w.fd), uintptr(wd), 0)
}

// stat returns the link count and modification time of the file at the
// lock's name, not following a symbolic link: by a raw statx(2), or where
// the system has none (Linux before 4.11, or a seccomp profile without
// it) by the filesystem's ordinary Lstat, or not at all (ok false).
func (w *watch) stat(path *byte) (nlink uint64, mtime time.Time, ok bool) {
	if !w.noStatx {
		var st unix.Statx_t
		cwd := unix.AT_FDCWD // a variable: a negative constant is no uintptr
		_, _, e := unix.RawSyscall6(unix.SYS_STATX, uintptr(cwd), uintptr(unsafe.Pointer(path)),
			uintptr(unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT), uintptr(unix.STATX_MTIME|unix.STATX_NLINK), uintptr(unsafe.Pointer(&st)), 0)
		want := uint32(unix.STATX_MTIME | unix.STATX_NLINK)
		switch {
		case e == 0 && st.Mask&want == want:
			return uint64(st.Nlink), time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)), true
		case e == 0 || e == unix.ENOSYS || e == unix.EPERM:
			w.noStatx = true
		default:
			return 0, time.Time{}, false
		}
	}
	info, err := w.l.cfg.fs.Lstat(w.l.path)
	if err != nil {
		return 0, time.Time{}, false
	}
	return info.Nlink, info.ModTime, true
}

// read passes on what the events say about the watched file until the
// file's read deadline passes. It reads with a raw system call, for the
// reason addWatch gives.
func (w *watch) read(rc syscall.RawConn) {
	defer close(w.done)
	var buf [4096]byte
	for {
		var n int
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			n, errno = int(r), e
			return e != unix.EAGAIN
		})
		if err == nil && errno == unix.EINTR {
			continue
		}
		if err != nil || errno != 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return
			}
			// Anything else ends the watch, and the waiter polls.
			w.signal(wakeLook)
			return
		}
		if parseEvents(buf[:n], w.wd.Load()) {
			if k := w.lookFor(); k != wakeNone {
				w.signal(k)
			}
		}
	}
}

// parseEvents reports whether buf holds an event of the watch whose
// descriptor is cur or a later one, or a queue overflow, which may have
// lost one.
func parseEvents(buf []byte, cur int32) bool {
	found := false
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 || ev.Wd >= cur {
			found = true
		}
		buf = buf[end:]
	}
	return found
}

// settle waits until no unlink in the lock's directory is under way, by
// reading the directory (getdents64, which takes the directory's lock
// shared), and reports whether it could. unlink(2) tells the file's
// watchers of the new link count (IN_ATTRIB) before it removes the name,
// under the directory's lock held exclusively throughout (this rests on
// the VFS locking the parent for an unlink, as it has always done): a
// watch attached in between, after the IN_ATTRIB went out, is proven on a
// file leaving the name, and hears nothing more of it if its claim stays
// (a flufl.lock release or break). A rename changes the name before it
// tells, so it needs no settling.
//
// It is an ordinary system call, unlike the others of a look: it waits
// for as long as an unlink in the directory is held up, and a raw one
// would keep its thread's P (and hold up the runtime's stops for a
// collection) all that time. The caller holds w.mu.
func (w *watch) settle() bool {
	if w.dirfd < 0 {
		fd, err := unix.Open(w.l.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		w.dirfd = fd
	}
	var buf [1024]byte
	_, err := unix.Getdents(w.dirfd, buf[:])
	return err == nil
}

// lookFor is the reader's answer to a change of the watched file: while
// the waiter sleeps, it looks as the waiter would, and returns wakeNone
// if the sleep goes on as it is (another waiter's lock file stands at the
// name, now watched, and may not be broken before the waiter's timer
// fires); wakeAttempt if the lock may be taken or broken now; wakeLook if
// the waiter must look for itself (it is not asleep, the file there cannot
// be watched, or the sleep must end sooner).
//
// A waiter that has lost a race after a wake (a crowd) looks after a
// random pause of up to wakeSpread; the reader pauses for it.
func (w *watch) lookFor() int {
	l := w.l
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sleeping {
		return wakeLook
	}
	if w.lost {
		w.mu.Unlock()
		t := l.cfg.clock.NewTimer(rand.N(wakeSpread))
		select {
		case <-t.C():
		case <-w.quit:
			t.Stop()
		}
		w.mu.Lock()
		if !w.sleeping {
			return wakeLook
		}
	}
	if l.cfg.deadOwnerBreak {
		return wakeLook // the look reads the file, and watches its holder: the waiter's work
	}
	switch w.arm() {
	case armGone:
		w.woken = true
		return wakeAttempt
	case armBlind:
		return wakeLook
	}
	if w.mtime.IsZero() {
		return wakeLook
	}
	due, ok := w.due(w.mtime)
	if !ok {
		return wakeAttempt
	}
	if l.cfg.clock.Now().Add(w.sleepFor(due, ok, true)).Before(w.deadline) {
		return wakeLook // to sleep less
	}
	return wakeNone
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
	w.mu.Lock()
	if w.woken {
		w.lost = true // the attempt that followed the wake failed
	}
	w.woken = false
	w.d = d
	watched := false
	switch w.arm() {
	case armGone:
		// Nothing to wait for: attempt now. The attempt just made failed,
		// so the lock was released since: others are making progress. A
		// pause of wakeSpread every few such turns keeps this from
		// spinning should lock files come and go faster than we look.
		if w.empty++; w.empty%8 != 0 {
			w.mu.Unlock()
			return nil
		}
		w.d = min(d, wakeSpread)
	case armWatched:
		w.empty, watched = 0, true
	}
	due, ok := w.hint()
	t := w.timer(clock, w.sleepFor(due, ok, watched))
	w.sleeping = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.sleeping = false
		w.mu.Unlock()
		t.Stop()
	}()
	// look watches the file now at the name, if any, and reports whether
	// the sleep goes on: another waiter won, and its lock file is watched.
	// A file there that may be broken already (one that replaced the file
	// watched) is left to an attempt now.
	look := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
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
		t = w.timer(clock, w.sleepFor(due, ok, k == armWatched))
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
		case k := <-w.events:
			if k != wakeLook || !look() {
				return nil
			}
		}
	}
}

// timer starts the sleep's timer, of d, and notes when it fires. The
// caller holds w.mu.
func (w *watch) timer(clock retry.Clock, d time.Duration) retry.Timer {
	w.deadline = clock.Now().Add(d)
	return clock.NewTimer(d)
}

// sleepFor is how long to sleep: the backoff's delay, or less when the
// file at the name may be broken sooner (due, if ok). Where a release
// wakes us (watched), the backoff's timer is only a safety net, and need
// not wake a crowd of waiters several times a second; where it does not,
// or where no expiry is ahead (no file, or one that may be broken already,
// whose break the attempt just made could not complete: another breaker's
// lock in the way, whose end nothing at the lock's name tells), look again
// within watchedPoll. The caller holds w.mu.
func (w *watch) sleepFor(due time.Duration, ok, watched bool) time.Duration {
	switch {
	case ok && watched && w.unsettled:
		// The file watched may be one an unlink is removing from the
		// name, which would never wake us (settle).
		return min(due, watchedPoll)
	case ok && watched:
		return min(due, max(w.d, watchedPoll))
	case ok:
		return min(due, w.d, watchedPoll)
	default:
		return min(w.d, watchedPoll)
	}
}

// watchedPoll is the longest a watched waiter sleeps without an event,
// unless the lock may be broken sooner.
const watchedPoll = 2 * time.Second

// hint looks at the lock file between two attempts and returns how long
// until it may be broken, if that lies ahead and is known: its expiry plus
// the clock slop, or, with WithDeadOwnerBreak, soon after its holder's
// process on this host exits. It is a hint only (a network filesystem's
// attributes can be stale): the attempt that follows judges afresh. It
// takes the file's time from the arm just made, if that watched it. The
// caller holds w.mu, and has just called arm.
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
	} else if mtime = w.mtime; mtime.IsZero() {
		info, err := l.cfg.fs.Lstat(l.path)
		if err != nil {
			return 0, false
		}
		mtime = info.ModTime
	}
	return w.due(mtime)
}

// due is hint's answer for a lock file last modified at mtime.
func (w *watch) due(mtime time.Time) (time.Duration, bool) {
	l := w.l
	// A millisecond past the moment, as breakable asks for a time after it.
	// By the earliest the filesystem's clock can show, as breakable
	// judges (timebase.go).
	lo, _ := l.fsNow()
	d := mtime.Add(l.cutBy(fsys.Info{ModTime: mtime})+l.cfg.slop).Sub(lo) + time.Millisecond
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
	close(w.quit)
	w.f.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	if w.dirfd >= 0 {
		unix.Close(w.dirfd)
	}
	go w.f.Close()
}
