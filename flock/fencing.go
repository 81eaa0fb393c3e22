package flock

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Fencing: with WithFencing, each acquisition takes the next value of a
// counter kept next to the lock file. The counter is one empty file whose
// name carries its value, <lock>.fence.<N>; taking a token renames it to
// <lock>.fence.<N+1>. A rename succeeds only while its source exists, so
// of any processes that try to move the counter from N, exactly one does,
// and a process that paused and lost the lock can only fail to rename a
// name that has moved on: it can never move the counter back. (A counter
// kept in a file's contents and replaced by writing a temporary file and
// renaming it over could: a writer that read N, paused while others moved
// the counter to N+2, and then renamed its N+1 into place would make the
// next holder take N+2 a second time.)
//
// To find N without listing the directory, which network filesystems may
// answer from a cache many seconds old, each taker also writes N to
// <lock>.fence, read through an open descriptor as the lock file is. That
// file is only a hint: a stale one costs a few extra renames or a listing,
// never a wrong token.

// ErrFencing is wrapped by the error Acquire returns when the fencing
// counter next to the lock file cannot be advanced: its file
// <lock>.fence.<N> was deleted while the hint <lock>.fence remains, or it
// has reached the largest uint64. The error says what to do.
var ErrFencing = errors.New("flock: fencing counter unusable")

const (
	fenceSuffix = ".fence"
	// fenceProbes is how many counter values above the hint are tried
	// before listing the directory. The hint lags the counter only when a
	// taker was stopped between its rename and its hint, by as many
	// acquisitions as happened meanwhile.
	fenceProbes = 16
	// fenceHintMax bounds the read of the hint: 20 digits and a newline,
	// with room to spare; anything longer is not a hint.
	fenceHintMax = 64
)

// Token returns the fencing token of the current acquisition and true, if
// this Lock holds the lock and was made with [WithFencing]; otherwise 0 and
// false. It reads no file: use IsLocked or the context of KeepAlive to
// learn whether the lock is still held.
//
// Tokens of the lock strictly increase from one acquisition to the next,
// across processes, hosts and broken locks, for as long as the counter's
// side files exist. A store that the lock protects uses them to refuse a
// holder whose lock was lost while it paused (a stop, a swap storm, a
// suspended VM) and who does not know it yet: the holder sends its token
// with every write; the store keeps the largest token it has accepted and,
// in the same atomic step as the write (a transaction, a conditional
// update, a compare-and-swap), refuses a write whose token is smaller.
// Equal tokens are one holder's writes and are accepted. Once the next
// holder has written, the stale holder's writes are refused.
//
// The counter is the file <lock>.fence.<N>, whose name holds the last
// token handed out, and <lock>.fence remembers N so that it is found
// without listing the directory; [Lock.Release] leaves both. Deleting
// <lock>.fence costs one directory listing. Deleting <lock>.fence.<N> while
// <lock>.fence remains makes acquisitions with fencing fail with
// [ErrFencing] rather than hand out small tokens. Deleting both restarts
// the tokens at 1: a store that has seen larger ones then refuses every
// holder until its record is reset. To move the counter forward instead,
// rename <lock>.fence.<N> to a larger N. Do not name another lock file
// <lock>.fence.
//
// The renames are not followed by fsync: on a local disk, a power failure
// can undo the last of them, and a token handed out just before it may be
// handed out again after it (to processes of a machine that has just
// restarted). Network filesystem servers commit a rename before replying.
//
// Token is safe for concurrent use.
func (l *Lock) Token() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.token == 0 {
		return 0, false
	}
	return l.token, true
}

// fence takes a token for the acquisition just made, and returns 0 and
// nil if the attempt should be given up and tried again. acquired checks
// afterwards that the lock is still ours: a token taken after the lock was
// broken does not count. Called with l.mu held and l.held set.
func (l *Lock) fence() (uint64, error) {
	token, err := l.takeToken()
	if errors.Is(err, errFenceBusy) {
		l.cfg.logger.Warn("flock: fencing counter not found; releasing and retrying", "path", l.path, "err", err)
		l.giveBack()
		return 0, nil
	}
	if err != nil {
		l.giveBack()
		return 0, err
	}
	return token, nil
}

// errFenceBusy: no counter name could be moved, though some are listed;
// others are moving it, or the listing is stale. Worth another attempt.
var errFenceBusy = errors.New("flock: fencing counter moved by others")

func (l *Lock) fenceHintPath() string { return l.path + fenceSuffix }

func (l *Lock) counterPath(n uint64) string {
	return l.path + fenceSuffix + "." + strconv.FormatUint(n, 10)
}

// hintState is what was found at the hint's path.
type hintState int

const (
	hintAbsent  hintState = iota
	hintNumber            // a usable value
	hintForeign           // something that is not a hint: never overwritten
)

// readFenceHint reads the hint through one no-follow descriptor, at most
// fenceHintMax bytes. Whatever is there is untrusted: a symlink, a huge or
// garbled file only makes it foreign.
func (l *Lock) readFenceHint() (uint64, hintState, error) {
	f, err := l.cfg.fs.Open(l.fenceHintPath())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, hintAbsent, nil
	}
	if errors.Is(err, ErrNotRegular) {
		return 0, hintForeign, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	b, err := f.ReadAll(fenceHintMax + 1)
	if err != nil {
		return 0, 0, err
	}
	if n, ok := parseCounter(strings.TrimSpace(string(b))); ok && len(b) <= fenceHintMax {
		return n, hintNumber, nil
	}
	return 0, hintForeign, nil
}

// parseCounter accepts only the canonical decimal form of a positive
// uint64, so that each value has one name.
func parseCounter(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return n, true
}

// takeToken moves the counter forward by one and returns its new value.
func (l *Lock) takeToken() (uint64, error) {
	hint, state, err := l.readFenceHint()
	if err != nil {
		return 0, err
	}
	if state == hintNumber {
		for n := hint; n < hint+fenceProbes && n >= hint; n++ {
			moved, err := l.advanceCounter(n)
			if err != nil {
				return 0, err
			}
			if moved {
				l.writeFenceHint(n+1, state)
				return n + 1, nil
			}
		}
	}
	names, err := l.cfg.fs.ReadDir(l.dir)
	if err != nil {
		return 0, err
	}
	prefix := l.base + fenceSuffix + "."
	var found []uint64
	for _, name := range names {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if n, ok := parseCounter(rest); ok {
				found = append(found, n)
			}
		}
	}
	slices.Sort(found)
	for i := len(found) - 1; i >= 0; i-- {
		moved, err := l.advanceCounter(found[i])
		if err != nil {
			return 0, err
		}
		if moved {
			// Lower names are leftovers (or planted): tidy them away.
			for _, n := range found[:i] {
				l.cfg.fs.Remove(l.counterPath(n))
			}
			l.writeFenceHint(found[i]+1, state)
			return found[i] + 1, nil
		}
	}
	switch {
	case len(found) > 0:
		return 0, errFenceBusy
	case state == hintNumber:
		return 0, &fs.PathError{Op: "fence", Path: l.counterPath(hint), Err: fmt.Errorf(
			"%w: the counter file is missing while %s says %d; rename any %s.<N> back, or delete %[2]s to restart tokens at 1",
			ErrFencing, filepath.Base(l.fenceHintPath()), hint, filepath.Base(l.fenceHintPath()))}
	}
	// No counter yet (or both files were deleted): start at 1. Exclusive
	// creation, so that of two first takers only one gets it.
	f, err := l.cfg.fs.Create(l.counterPath(1), nil, l.cfg.clock.Now())
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, errFenceBusy
		}
		return 0, err
	}
	f.Close()
	l.writeFenceHint(1, state)
	return 1, nil
}

// advanceCounter renames the counter from n to n+1 and reports whether it
// did; false if there is no counter named n.
func (l *Lock) advanceCounter(n uint64) (bool, error) {
	if n == math.MaxUint64 {
		return false, &fs.PathError{Op: "fence", Path: l.counterPath(n), Err: fmt.Errorf("%w: the counter is at its largest value", ErrFencing)}
	}
	err := l.cfg.fs.Rename(l.counterPath(n), l.counterPath(n+1))
	switch {
	case err == nil:
		return true, nil
	case gone(err):
		return false, nil
	default:
		return false, err
	}
}

// writeFenceHint records n in the hint, by renaming a new file over it.
// A failure costs the next taker a listing, so it is only logged. It never
// replaces a file that is not a hint.
func (l *Lock) writeFenceHint(n uint64, was hintState) {
	if was == hintForeign {
		return
	}
	tmp := l.path + fenceSuffix + ".tmp-" + strconv.FormatUint(l.cfg.random(), 16)
	f, err := l.cfg.fs.Create(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), l.cfg.clock.Now())
	if err != nil {
		l.cfg.logger.Debug("flock: writing the fencing hint", "path", tmp, "err", err)
		return
	}
	f.Close()
	if err := l.cfg.fs.Rename(tmp, l.fenceHintPath()); err != nil {
		l.cfg.fs.Remove(tmp)
		l.cfg.logger.Debug("flock: writing the fencing hint", "path", l.fenceHintPath(), "err", err)
	}
}
