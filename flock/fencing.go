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

	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Fencing: with WithFencing, each acquisition takes the next value of a
// counter kept next to the lock file. The counter is one empty file whose
// name carries its value, <lock>.fence.<N>; taking a token moves it to
// <lock>.fence.<N+1> without ever replacing a file (moveNoReplace:
// renameat2 with RENAME_NOREPLACE, or link and unlink where that is
// missing, as on NFS and sshfs). A file's contents would not do: a writer
// that read N, paused while others moved the counter to N+2, and then
// renamed its N+1 into place would make the next holder take N+2 again.
// Beside it, the hint <lock>.fence holds a value the counter has reached,
// so that the counter is found without listing the directory, which a
// network filesystem may answer from a cache many seconds old.
//
// Why tokens strictly increase. Call the largest counter name that exists
// the top. Two rules keep every other name away from it:
//
//   - A counter is started, at 1, only by a taker that itself created the
//     hint in this call, exclusively. The hint is created once and then
//     only ever replaced, so a taker that found no hint, or read a listing
//     that showed no counter, and paused, cannot start a second counter
//     beside the live one when it resumes: its creation of the hint fails.
//     Deleting the hint is therefore a reset, as deleting both files is.
//   - A move from N that finds N+1 taken removes N: N+1 being there means
//     N is not the top but what a link-and-unlink move left before its
//     unlink (a crash, a pause, or our own link whose reply was lost). A
//     taker that found the top through a listing, and so did not pass the
//     names below it, removes them, and top-1, before it moves the top.
//
// So a name other than the top can only be top-1 with a move still to be
// finished, and a move from N that succeeds without replacing found N+1
// free: N was the top, and N+1 is larger than every token handed out
// before. A hint that lags or a listing that is stale can only make a
// taker try to move a name that has gone (ENOENT), never move the counter
// back or start another one. Only acquired decides whether the token is
// handed out (the lock must still be ours afterwards); a taker whose lock
// was broken while it paused only makes the counter skip a value.
//
// The hint is written after each move, by renaming a new file over it. It
// may go back (a writer that paused before its rename) but never beyond
// the top, so it is a lower bound: a taker tries fenceProbes values upward
// from it, then lists the directory and ignores counters below it. When no
// counter can be found at or above the hint, the taker fails with
// ErrFencing, saying how to recover, rather than start again at 1: the
// counter was deleted, or its starter crashed between creating the hint
// and creating the counter (or paused there and has lost the lock; the
// counter appears when it resumes).
//
// Lost replies: a rename that happened answers ENOENT when it is
// retransmitted (its source is gone), and the taker goes on to the next
// value; a link that happened answers EEXIST (NFS links by file handle),
// and the taker removes the source, finishing its own move, and goes on.
// Either way a value is skipped, never repeated. The hint is written to a
// temporary file first, under a claim-shaped name of this process
// (freshName), which the sweep removes once the process is proven dead:
// a crash between writing and renaming leaves nothing for good. The hint
// holds its value on its first line; a starter's hint also names that
// temporary on its second, so that a starter whose link into place was
// answered EEXIST can tell its own hint from another's where the
// filesystem reports no file identity (sshfs).
//
// A case-insensitive filesystem (SMB, APFS) lists the counter as it was
// last spelled, which may be another spelling of the lock's name: listings
// are matched case-insensitively, moves always use this Lock's spelling,
// and counters under two spellings are refused as ambiguous (two counters
// of one lock, or two locks on a case-sensitive filesystem).
//
// All of this holds for processes that cooperate: anyone who may write
// to the directory can delete the counter, rename it back or plant one
// ahead. Names of the counter that are not regular files are refused.

// ErrFencing is wrapped by the error Acquire returns when the fencing
// counter next to the lock file cannot be advanced without risking a
// token that is not larger than every earlier one; Fencing in the package
// doc says when. The error names the file at fault and says how to
// recover.
var ErrFencing = errors.New("flock: fencing counter unusable")

const (
	fenceSuffix = ".fence"
	// fenceProbes is how many counter values from the hint upward are
	// tried before listing the directory. The hint lags the counter only
	// when a taker was stopped between its move and its hint, by as many
	// acquisitions as happened meanwhile.
	fenceProbes = 16
	// fenceHintMax bounds the read of the hint: 20 digits and a newline,
	// then, in a hint as its starter created it, the name it was created
	// as (at most 255 bytes) and a newline, with room to spare; anything
	// longer is not a hint.
	fenceHintMax = 512
)

// Token returns the fencing token of the current acquisition and true, if
// this Lock holds the lock and was made with [WithFencing]; otherwise 0 and
// false. Tokens strictly increase from one acquisition of the lock to the
// next, across processes and hosts: send the token with every write to the
// store that the lock protects, which refuses tokens smaller than the
// largest it has accepted. Fencing in the package doc says how, where the
// counter lives, and how to reset it.
//
// Token reads no file: use IsLocked or the context of KeepAlive to learn
// whether the lock is still held. It is safe for concurrent use.
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

// errFenceBusy: the counter was listed but had moved on before it could be
// moved, or the hint vanished as it was created. Others are moving them
// (this Lock has most likely lost the lock), or the listing is stale.
// Worth another attempt.
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
// fenceHintMax bytes; its value is the first line. Whatever is there is
// untrusted: a symlink, a huge or garbled file only makes it foreign.
func (l *Lock) readFenceHint() (uint64, hintState, error) {
	f, err := l.cfg.fs.Open(l.fenceHintPath())
	if errors.Is(err, fs.ErrNotExist) || gone(err) {
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
	value, _, _ := strings.Cut(string(b), "\n")
	if n, ok := parseCounter(strings.TrimSpace(value)); ok && len(b) <= fenceHintMax {
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
	if state == hintAbsent {
		created, err := l.createFenceHint()
		if err != nil {
			return 0, err
		}
		if created {
			return l.startCounter()
		}
		// Another taker created it first: read what it holds.
		hint, state, err = l.readFenceHint()
		if err != nil {
			return 0, err
		}
		if state == hintAbsent {
			return 0, errFenceBusy // created and deleted since: a reset
		}
	}
	return l.advanceFrom(hint, state)
}

// startCounter creates the counter at 1, for the taker that has just
// created the hint: nobody else creates <lock>.fence.1 while it exists.
func (l *Lock) startCounter() (uint64, error) {
	f, err := l.cfg.fs.Create(l.counterPath(1), nil, l.cfg.clock.Now())
	if err == nil {
		f.Close()
		return 1, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return 0, err
	}
	// A counter from before a reset, or our own create whose reply was
	// lost: carry on from it.
	return l.advanceFrom(1, hintNumber)
}

// advanceFrom finds the counter, from the hint's value upward or, failing
// that (or with a foreign hint), in a listing, moves it, and records the
// new value in the hint.
func (l *Lock) advanceFrom(hint uint64, state hintState) (uint64, error) {
	var token uint64
	var err error
	from := uint64(1)
	if state == hintNumber {
		from = hint
		token, err = l.probeCounter(hint)
	}
	if err == nil && token == 0 {
		token, err = l.takeListedCounter(from, state)
		if errors.Is(err, ErrFencing) && state == hintNumber && hint == 1 && l.starterDead() {
			// The hint's creator died before it started the counter
			// (no counter was found at any value), so no token was
			// handed out: start it in its place. Of several takers that
			// find this, one creates the counter; the others move it.
			return l.startCounter()
		}
	}
	if err != nil {
		return 0, err
	}
	l.writeFenceHint(token, state)
	return token, nil
}

// starterDead reports whether the hint was created, and never updated
// since, by a process proven dead (see provenDead): the temporary name it
// was created as, on its second line, is that process's.
func (l *Lock) starterDead() bool {
	f, err := l.cfg.fs.Open(l.fenceHintPath())
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := f.ReadAll(fenceHintMax + 1)
	if err != nil || len(b) > fenceHintMax {
		return false
	}
	_, creator, _ := strings.Cut(string(b), "\n")
	creator = strings.TrimSpace(creator)
	return creator != "" && claim.IsClaimOf(creator, l.base, l.cfg.sep) && l.provenDead(creator)
}

// createFenceHint creates the hint, holding 1, where there was none, and
// reports whether this call created it. The hint is written under a fresh
// name of ours and moved into place without replacing, so that it appears
// whole and only one of several takers creates it.
func (l *Lock) createFenceHint() (bool, error) {
	tmp, err := l.newHintFile(1, true)
	if err != nil {
		return false, err
	}
	err = moveNoReplace(l.cfg.fs, tmp, l.fenceHintPath())
	if err == nil || gone(err) {
		// Nobody else knows our temporary's name: if it is gone, the
		// move happened and its reply was lost.
		return true, nil
	}
	// Another taker's hint, or our own link, whose reply was lost or whose
	// unlink failed: the hint names the temporary it was created as.
	l.removeHintFile(tmp)
	if f, oerr := l.cfg.fs.Open(l.fenceHintPath()); oerr == nil {
		b, rerr := f.ReadAll(fenceHintMax + 1)
		f.Close()
		if _, creator, _ := strings.Cut(string(b), "\n"); rerr == nil && strings.TrimSpace(creator) == filepath.Base(tmp) {
			return true, nil
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return false, err
}

// moveResult is what advanceCounter found at a counter value.
type moveResult int

const (
	counterAbsent moveResult = iota // no counter there
	counterMoved                    // moved up by one
	counterBehind                   // the next value was taken: removed as a leftover
)

// probeCounter moves the counter up from the first value at or above from
// where it finds it, giving up after fenceProbes values with no counter,
// and returns the value it moved it to; 0 if it found none.
func (l *Lock) probeCounter(from uint64) (uint64, error) {
	n := from
	for misses := 0; misses < fenceProbes; n++ {
		r, err := l.advanceCounter(n)
		if err != nil {
			return 0, err
		}
		switch r {
		case counterMoved:
			return n + 1, nil
		case counterAbsent:
			misses++
		}
		if n == math.MaxUint64 {
			break
		}
	}
	return 0, nil
}

// advanceCounter moves the counter from n to n+1, never replacing a file.
func (l *Lock) advanceCounter(n uint64) (moveResult, error) {
	if err := l.refuseIrregular(n); err != nil {
		return 0, err
	}
	from := l.counterPath(n)
	if n == math.MaxUint64 {
		switch _, err := l.cfg.fs.Lstat(from); {
		case gone(err):
			return counterAbsent, nil
		case err != nil:
			return 0, err
		}
		return 0, &fs.PathError{Op: "fence", Path: from, Err: fmt.Errorf(
			"%w: the counter is at its largest value; to restart tokens at 1, stop every process that uses the lock, delete %s and %s, and reset the largest token recorded by every store the lock protects",
			ErrFencing, filepath.Base(l.fenceHintPath()), filepath.Base(from))}
	}
	to := l.counterPath(n + 1)
	err := moveNoReplace(l.cfg.fs, from, to)
	switch {
	case err == nil:
		return counterMoved, nil
	case gone(err):
		return counterAbsent, nil
	case errors.Is(err, fs.ErrExist):
	default:
		// sshfs refuses a link onto a name that appeared meanwhile with
		// EPERM: that is EEXIST if n+1 is there now.
		if _, lerr := l.cfg.fs.Lstat(to); lerr != nil {
			return 0, err
		}
	}
	// n+1 is taken, so n is not the top: the source of a move not yet
	// finished (perhaps our own, whose reply was lost), or a leftover.
	if err := l.refuseIrregular(n + 1); err != nil {
		return 0, err
	}
	if err := l.cfg.fs.Remove(from); err != nil && !gone(err) {
		return 0, err
	}
	return counterBehind, nil
}

// refuseIrregular returns an ErrFencing error if something other than a
// regular file is named like counter n: never moved, never trusted.
func (l *Lock) refuseIrregular(n uint64) error {
	path := l.counterPath(n)
	info, err := l.cfg.fs.Lstat(path)
	if err != nil || info.Mode.IsRegular() {
		return nil
	}
	return &fs.PathError{Op: "fence", Path: path, Err: fmt.Errorf(
		"%w: a %s bears the fencing counter's name; a Lock makes the counter an empty regular file, so none made this: remove it (fencing assumes that the processes writing to the directory cooperate)",
		ErrFencing, fsys.Kind(info.Mode))}
}

// takeListedCounter finds the counter by listing the directory, where
// probing from the hint (or from 1, with a foreign hint) did not find it,
// and moves it. Counters below from are ignored: the hint says the
// counter has been beyond them.
func (l *Lock) takeListedCounter(from uint64, state hintState) (uint64, error) {
	names, err := l.cfg.fs.ReadDir(l.dir)
	if err != nil {
		return 0, err
	}
	found, err := l.listedCounters(names)
	if err != nil {
		return 0, err
	}
	if len(found) == 0 || found[len(found)-1] < from {
		return 0, l.missingCounter(from, state, found)
	}
	top := found[len(found)-1]
	// The names below were not passed on the way up: remove them (and
	// top-1, which a partial listing may not show) before moving the top,
	// so that none is left below it.
	for _, n := range found[:len(found)-1] {
		l.removeBelowTop(n)
	}
	if top > 1 {
		l.removeBelowTop(top - 1)
	}
	token, err := l.probeCounter(top)
	if err == nil && token == 0 {
		err = errFenceBusy
	}
	return token, err
}

// removeBelowTop removes counter n, which is below a counter that exists.
func (l *Lock) removeBelowTop(n uint64) {
	if err := l.cfg.fs.Remove(l.counterPath(n)); err != nil && !gone(err) {
		l.cfg.logger.Debug("flock: removing a fencing counter left below the top", "path", l.counterPath(n), "err", err)
	}
}

// listedCounters returns the counter values among a listing of the lock's
// directory, sorted. A case-insensitive filesystem lists a name as it was
// last spelled, which may be another spelling of the lock's: names are
// matched regardless of case, and two spellings are ambiguous.
func (l *Lock) listedCounters(names []string) ([]uint64, error) {
	prefix := l.base + fenceSuffix + "."
	var found []uint64
	var spelling string
	for _, name := range names {
		if len(name) <= len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) {
			continue
		}
		n, ok := parseCounter(name[len(prefix):])
		if !ok {
			continue
		}
		switch p := name[:len(prefix)]; {
		case spelling == "":
			spelling = p
		case p != spelling:
			return nil, &fs.PathError{Op: "fence", Path: l.fenceHintPath(), Err: fmt.Errorf(
				"%w: the directory lists fencing counters under two spellings of the lock's name, %s<N> and %s<N>; on a case-insensitive filesystem remove the one that is not the counter, on a case-sensitive one give the locks names that differ in more than case",
				ErrFencing, spelling, p)}
		}
		found = append(found, n)
	}
	slices.Sort(found)
	return found, nil
}

// missingCounter is the error for a counter that was not found at or above
// from, though the hint says (or a foreign hint may say) it was started.
// Starting again at 1 could repeat tokens; the error says how to recover.
func (l *Lock) missingCounter(from uint64, state hintState, found []uint64) error {
	hint := filepath.Base(l.fenceHintPath())
	var msg string
	switch {
	case state == hintForeign:
		msg = fmt.Sprintf("%s is not a fencing hint and no counter %s.<N> was found; if nothing else uses that name, remove it to restart tokens at 1",
			hint, hint)
	case len(found) > 0:
		msg = fmt.Sprintf("%s says the counter reached %d, but the largest counter is %s.%d; if %s was edited, write the counter's value into it; otherwise delete %[3]s to restart tokens at 1",
			hint, from, hint, found[len(found)-1], hint)
	default:
		msg = fmt.Sprintf("%s says the counter reached %d, but no counter %s.<N> with N >= %[2]d exists (it was deleted, or a process stopped while starting it); rename the counter back if it was moved, or delete %[1]s to restart tokens at 1",
			hint, from, hint)
	}
	return &fs.PathError{Op: "fence", Path: l.fenceHintPath(), Err: fmt.Errorf(
		"%w: %s (and reset the largest token recorded by every store the lock protects)", ErrFencing, msg)}
}

// newHintFile writes n, as the hint holds it, to a fresh name of ours
// beside the lock file: claim-shaped, so that the sweep removes it if this
// process dies before moving it into place. A signed hint also holds that
// name, on its second line.
func (l *Lock) newHintFile(n uint64, signed bool) (string, error) {
	var err error
	for range 3 {
		tmp := l.freshName()
		data := strconv.FormatUint(n, 10) + "\n"
		if signed {
			data += filepath.Base(tmp) + "\n"
		}
		var f fsys.File
		f, err = l.cfg.fs.Create(tmp, []byte(data), l.cfg.clock.Now())
		if errors.Is(err, fs.ErrExist) {
			// Nobody can guess the name: this is our own create whose
			// reply was lost, litter that only we would ever remove
			// (the sweep spares a live process's names), as newClaim
			// does.
			l.removeHintFile(tmp)
			continue
		}
		if err != nil {
			return "", err
		}
		f.Close()
		return tmp, nil
	}
	return "", err
}

func (l *Lock) removeHintFile(tmp string) {
	if err := l.cfg.fs.Remove(tmp); err != nil && !gone(err) {
		l.cfg.logger.Debug("flock: removing a fencing hint's temporary file", "path", tmp, "err", err)
	}
}

// writeFenceHint records n in the hint, by renaming a new file over it.
// A failure costs the next taker a few probes or a listing, so it is only
// logged. It never replaces a file that is not a hint.
func (l *Lock) writeFenceHint(n uint64, was hintState) {
	if was == hintForeign {
		return
	}
	tmp, err := l.newHintFile(n, false)
	if err != nil {
		l.cfg.logger.Debug("flock: writing the fencing hint", "path", l.fenceHintPath(), "err", err)
		return
	}
	if err := l.cfg.fs.Rename(tmp, l.fenceHintPath()); err != nil {
		l.removeHintFile(tmp)
		l.cfg.logger.Debug("flock: writing the fencing hint", "path", l.fenceHintPath(), "err", err)
	}
}
