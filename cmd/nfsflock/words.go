package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// Messages are for people: they name the lock file as it was typed and
// say what went wrong in one line, without the chain of Go calls that led
// there ("acquire /v/L: create /v/L|h|1|2: permission denied").

// A lockError is an error of flock about the lock file path, as typed.
type lockError struct {
	path string
	err  error
}

func (e lockError) Error() string { return explain(e.path, e.err) }
func (e lockError) Unwrap() error { return e.err }

// opWords says what each operation of a *fs.PathError was doing.
var opWords = map[string]string{
	"stat":     "cannot look at",
	"lstat":    "cannot look at",
	"open":     "cannot open",
	"create":   "cannot create",
	"read":     "cannot read",
	"write":    "cannot write",
	"link":     "cannot link",
	"rename":   "cannot rename",
	"remove":   "cannot remove",
	"chtimes":  "cannot set the times of",
	"utimes":   "cannot set the times of",
	"futimens": "cannot set the times of",
	"readdir":  "cannot list",
}

// explain says in one line what err, an error of flock about the lock
// file path, means.
func explain(path string, err error) string {
	var nr *flock.NotRegularError
	switch {
	case errors.As(err, &nr):
		return fmt.Sprintf("%s is a %s, not a regular file: nfsflock leaves it alone", path, nr.Kind)
	case errors.Is(err, flock.ErrInvalid):
		msg := err.Error()
		if i := strings.LastIndex(msg, flock.ErrInvalid.Error()+": "); i >= 0 {
			msg = msg[i+len(flock.ErrInvalid.Error()+": "):]
		}
		return fmt.Sprintf("%s: %s", path, msg)
	case errors.Is(err, flock.ErrLockLost):
		msg := err.Error()
		if i := strings.Index(msg, flock.ErrLockLost.Error()); i >= 0 {
			msg = msg[i+len("flock: "):]
		}
		return fmt.Sprintf("%s: %s", path, msg)
	case errors.Is(err, flock.ErrLinkUnsupported):
		return fmt.Sprintf("%s: its filesystem has neither hard links nor renames that do not replace, which --fencing needs (the lock works there without it)", path)
	}
	// The innermost system call that failed says the most.
	var (
		op, target string
		cause      error
	)
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e := e.(type) {
		case *fs.PathError:
			op, target, cause = e.Op, e.Path, e.Err
		case *os.LinkError:
			op, target, cause = e.Op, e.New, e.Err
		}
	}
	abs, _ := filepath.Abs(path)
	dir := filepath.Dir(abs)
	var errno syscall.Errno
	isErrno := errors.As(cause, &errno)
	words, known := opWords[op]
	switch {
	case cause == nil:
		return fmt.Sprintf("%s: %s", path, strings.TrimPrefix(err.Error(), "flock: "))
	case errors.Is(cause, fs.ErrNotExist) && (target == dir || !fileExists(dir)):
		return fmt.Sprintf("%s: its directory %s does not exist", path, dir)
	case errors.Is(cause, fs.ErrPermission) && filepath.Dir(target) == dir && op != "stat":
		return fmt.Sprintf("%s: %s files in %s: %v", path, "cannot create or change", dir, cause)
	case known && isErrno:
		if target == abs || target == path {
			return fmt.Sprintf("%s: %s it: %v", path, words, cause)
		}
		return fmt.Sprintf("%s: %s %s: %v", path, words, target, cause)
	}
	return fmt.Sprintf("%s: %s", path, strings.TrimPrefix(err.Error(), "flock: "))
}

// fileExists reports whether path names a file.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// startWords says in one line why COMMAND could not be started.
func startWords(name string, err error) string {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Sprintf("%s: command not found", name)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s: no such file", name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s: cannot run it: permission denied (is it executable?)", name)
	}
	return fmt.Sprintf("%s: cannot run it: %v", name, err)
}

// holderWords says who holds the lock that st describes: "pid 4242 on
// host h.example.com", the hostname quoted if it holds characters that do
// not print.
func holderWords(st flock.Status) string {
	if st.Holder == nil {
		return "an unnamed holder (the lock file's contents are not a claim)"
	}
	return fmt.Sprintf("pid %d on host %s", st.Holder.PID, quoted(st.Holder.Hostname))
}

// expiryWords says when the lock that st describes expires and when it
// may be broken, as of st.At: "expires in 29 s", "expired 1.2 s ago;
// breakable in 8.8 s, after the clock slop", "expired 12 s ago;
// breakable", or, past the slop yet not breakable, why not.
func expiryWords(st flock.Status, slop time.Duration) string {
	switch {
	case !st.Expired && st.Breakable:
		return fmt.Sprintf("expires in %s, but breakable now: its holder runs no process here (--dead-owner-break)", approx(st.Expiry.Sub(st.At)))
	case !st.Expired:
		return "expires in " + approx(st.Expiry.Sub(st.At))
	case st.Breakable:
		return fmt.Sprintf("expired %s ago; breakable", approx(st.At.Sub(st.Expiry)))
	case !st.Expiry.Add(slop).After(st.At):
		// Past the slop by this host's clock, yet not breakable: the
		// file changed moments ago (a flufl.lock waiter links an expired
		// lock, which settles for a while), or the filesystem's clock,
		// which judges, lags this host's.
		return fmt.Sprintf("expired %s ago; not breakable yet: it changed moments ago (as when a flufl.lock waiter links it), or the filesystem's clock runs behind this host's",
			approx(st.At.Sub(st.Expiry)))
	}
	return fmt.Sprintf("expired %s ago; breakable in %s, after the clock slop",
		approx(st.At.Sub(st.Expiry)), approx(st.Expiry.Add(slop).Sub(st.At)))
}

// blockedWords says why the last attempt of a wait that err, an error of
// Acquire, ended could not break an expired lock, as flock's error says it
// between parentheses: "the lock is owned by uid 1001: only that user or
// root can break it", or "this user may not break the lock". It is "" if
// err says nothing of the kind (and for contention with another breaker,
// which passes). The failed system call at the end of flock's reason is
// left out: it repeats the lock's path and says "operation not permitted".
func blockedWords(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	i := strings.LastIndex(msg, blockedPrefix)
	if i < 0 {
		return ""
	}
	why := strings.TrimSuffix(msg[i+len(blockedPrefix):], ")")
	switch {
	case strings.Contains(why, ownerOnly):
		why = why[:strings.Index(why, ownerOnly)+len(ownerOnly)]
	case strings.Contains(why, mayNotBreak):
		j := strings.Index(why, mayNotBreak)
		if k := strings.Index(why[j:], ": "); k >= 0 {
			why = why[:j+k]
		}
	}
	return why
}

// The words of flock's error for an expired lock that it may not break,
// which blockedWords looks for.
const (
	blockedPrefix = "(the lock expired, but "
	ownerOnly     = "only that user or root can break it"
	mayNotBreak   = "may not break "
)

// blockedExpiryWords is expiryWords for a lock that is breakable by its
// times but that this user may not break, for the reason why (from
// blockedWords or ownerBlocks): "expired 7.4 s ago, but the lock is owned
// by uid 1001: only that user or root can break it".
func blockedExpiryWords(st flock.Status, why string) string {
	if !st.Expired {
		return fmt.Sprintf("expires in %s, but %s", approx(st.Expiry.Sub(st.At)), why)
	}
	return fmt.Sprintf("expired %s ago, but %s", approx(st.At.Sub(st.Expiry)), why)
}

// approx writes d for people: "1.2 s" below 10 s, then "29 s", "4 min",
// "3 h", "2 days".
func approx(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < 120*time.Second:
		return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
	case d < 120*time.Minute:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute).Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Round(time.Hour).Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour).Hours()/24))
}
