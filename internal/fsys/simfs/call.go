package simfs

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// A Stepper decides when a call happens. A Proc hands it every call before
// the call touches the model: the Stepper calls apply once, when (and from
// whichever goroutine) it wants the call to happen, and returns when the
// caller may go on. A Stepper that never calls apply makes the call fail
// with EIO and leaves the model alone, as a call of a crashed process
// would.
type Stepper func(c *Call, apply func())

// Call is one call of a Proc: what was asked, what it did to the server,
// and what its caller is told.
type Call struct {
	Proc  *Proc
	Op    string // create, lstat, link, rename, renamenoreplace, exchange, remove, open, readdir, alive, stat, read, settimes, close
	Path  string // the path named, or the path the file was opened by
	Path2 string // the new name of link and rename, the other name of exchange
	Time  time.Time
	Err   error // what the caller is told
	// Lost says that the call happened on the server but its reply was
	// lost; Err is the answer to the retransmission.
	Lost    bool
	Result  string // a short description of what the caller got, for traces
	Effects []Effect
}

// EffectKind says what a call changed on the server.
type EffectKind int

// The changes a call can make.
const (
	Created  EffectKind = iota + 1 // Path now names the new inode ID
	Linked                         // Path now names ID too (Path2 is the old name)
	Unlinked                       // Path no longer names ID
	Replaced                       // a rename onto Path unlinked ID from it
	Moved                          // ID moved from Path to Path2
	Retimed                        // ID's times were set to Time
)

var effectNames = [...]string{Created: "created", Linked: "linked", Unlinked: "unlinked", Replaced: "replaced", Moved: "moved", Retimed: "retimed"}

func (k EffectKind) String() string {
	if k > 0 && int(k) < len(effectNames) {
		return effectNames[k]
	}
	return fmt.Sprintf("EffectKind(%d)", int(k))
}

// Effect is one change a call made on the server.
type Effect struct {
	Kind  EffectKind
	Path  string
	Path2 string
	ID    uint64 // the inode's identity (see [Node])
	Time  time.Time
}

func (c *Call) effect(e Effect) {
	if c != nil {
		c.Effects = append(c.Effects, e)
	}
}

// String describes the call, its answer and its effects in one line,
// with paths shortened by short (which may be nil).
func (c *Call) String() string { return c.Format(nil) }

// Format is String with every path passed through short.
func (c *Call) Format(short func(string) string) string {
	if short == nil {
		short = func(p string) string { return p }
	}
	var b strings.Builder
	b.WriteString(c.Op)
	if c.Path != "" {
		b.WriteString(" " + short(c.Path))
	}
	if c.Path2 != "" {
		b.WriteString(" " + short(c.Path2))
	}
	if !c.Time.IsZero() {
		b.WriteString(" @" + c.Time.UTC().Format("15:04:05.000000000"))
	}
	b.WriteString(" = ")
	switch {
	case c.Err != nil:
		b.WriteString(errName(c.Err))
	case c.Result != "":
		b.WriteString(c.Result)
	default:
		b.WriteString("ok")
	}
	if c.Lost {
		b.WriteString(" (reply lost, retransmitted)")
	}
	for _, e := range c.Effects {
		fmt.Fprintf(&b, " [%v #%d", e.Kind, e.ID)
		if e.Path != "" {
			b.WriteString(" " + short(e.Path))
		}
		if e.Path2 != "" {
			b.WriteString(" " + short(e.Path2))
		}
		if e.Kind == Retimed {
			b.WriteString(" " + e.Time.Format("15:04:05.000000000"))
		}
		b.WriteString("]")
	}
	return b.String()
}

// errName names an error by its errno where it has one.
func errName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if name := errnoNames[e]; name != "" {
			return name
		}
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return "unsupported"
	}
	var nr *fsys.NotRegularError
	if errors.As(err, &nr) {
		return "not regular (" + nr.Kind + ")"
	}
	return err.Error()
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT:    "ENOENT",
	syscall.EEXIST:    "EEXIST",
	syscall.ESTALE:    "ESTALE",
	syscall.EPERM:     "EPERM",
	syscall.EIO:       "EIO",
	syscall.EISDIR:    "EISDIR",
	syscall.ENOTDIR:   "ENOTDIR",
	syscall.ENOTEMPTY: "ENOTEMPTY",
	syscall.EINVAL:    "EINVAL",
	syscall.EBUSY:     "EBUSY",
	syscall.EBADF:     "EBADF",
}
