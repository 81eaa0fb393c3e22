package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/nfsflock/nfsflock/flock"
)

const (
	// displayDelay passes before the first line is shown, so that a lock
	// taken at once shows nothing.
	displayDelay = 200 * time.Millisecond
	// displayEvery is how often the line is brought up to date.
	displayEvery = 500 * time.Millisecond
)

// A waitDisplay keeps one line on a terminal up to date, in place, with who
// holds the lock that nfsflock waits for and when that lock expires. A nil
// *waitDisplay shows nothing.
type waitDisplay struct {
	out    *os.File
	lock   *flock.Lock // reads the lock file; never takes the lock
	slop   time.Duration
	giveUp time.Time // zero: nfsflock waits as long as it takes

	once sync.Once
	quit chan struct{}
	done chan struct{}
}

// showWait starts a display on out if out is a terminal; otherwise it
// returns nil.
func showWait(out *os.File, l *flock.Lock, slop time.Duration, giveUp time.Time) *waitDisplay {
	if !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	d := &waitDisplay{out: out, lock: l, slop: slop, giveUp: giveUp, quit: make(chan struct{}), done: make(chan struct{})}
	go d.loop()
	return d
}

// stop clears the line and returns once the display has ended. It may be
// called more than once.
func (d *waitDisplay) stop() {
	if d == nil {
		return
	}
	d.once.Do(func() { close(d.quit) })
	<-d.done
}

func (d *waitDisplay) loop() {
	defer close(d.done)
	shown := 0 // the width of the line on the terminal
	defer func() {
		if shown > 0 {
			fmt.Fprintf(d.out, "\r%s\r", strings.Repeat(" ", shown))
		}
	}()
	tick := time.NewTimer(displayDelay)
	defer tick.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-tick.C:
		}
		if line, ok := d.line(time.Now()); ok {
			shown = overwrite(d.out, line, shown, terminalWidth(d.out))
		}
		tick.Reset(displayEvery)
	}
}

// line describes the wait, or reports false when there is nothing to say:
// the lock file is nfsflock's own, taken a moment ago.
func (d *waitDisplay) line(now time.Time) (string, bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "nfsflock: waiting for %s", d.lock.Path())
	st, err := d.lock.Inspect()
	switch {
	case err != nil:
		fmt.Fprintf(&b, ": %s", explain(d.lock.Path(), err))
	case st.Ours:
		return "", false
	case st.Exists:
		expiry := expiryWords(st, d.slop)
		if st.Breakable {
			if why := ownerBlocks(d.lock.Path()); why != "" {
				expiry = blockedExpiryWords(st, why)
			}
		}
		fmt.Fprintf(&b, ": held by %s (%s)", holderWords(st), expiry)
	}
	if !d.giveUp.IsZero() {
		fmt.Fprintf(&b, "; giving up in %s", approx(max(0, d.giveUp.Sub(now))))
	}
	return printable(b.String()), true
}

// terminalWidth returns the number of columns of the terminal f, or 0 if
// it cannot tell.
func terminalWidth(f *os.File) int {
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// overwrite replaces the line of width shown on a terminal of width
// columns (0 if unknown) with line, cut to fit, and returns its width.
func overwrite(w io.Writer, line string, shown, columns int) int {
	runes := []rune(line)
	if columns > 1 && len(runes) >= columns {
		runes = runes[:columns-1] // the last column would wrap on some terminals
	}
	pad := max(0, shown-len(runes))
	fmt.Fprintf(w, "\r%s%s", string(runes), strings.Repeat(" ", pad))
	return len(runes)
}
