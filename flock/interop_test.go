//go:build unix

package flock_test

// Interop with Python's flufl.lock: real Python processes running the
// unmodified library (Debian's python3-flufl.lock, 5.0.1) through the
// scripts in testdata/flufl, and Go Locks, on one lock file. The scripts
// may lower flufl's module-level CLOCK_SLOP so that breaks take seconds.
//
// These run on the local disk, not sshfs: flufl.lock decides ownership by
// a link count of 2, which sshfs never reports.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// pyLock is a Python process holding one flufl.lock Lock, driven through
// testdata/flufl/lockctl.py.
type pyLock struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan pyReply
	stderr  *syncBuffer
	exited  chan struct{}
	info    struct {
		ClaimFile string `json:"claimfile"`
		Hostname  string `json:"hostname"`
		PID       int    `json:"pid"`
		LockFile  string `json:"lockfile"`
	}
}

type pyReply struct {
	OK      json.RawMessage `json:"ok"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// pyError is an exception raised in the Python process.
type pyError struct{ Name, Message string }

func (e *pyError) Error() string { return "python: " + e.Name + ": " + e.Message }

// syncBuffer collects a child's stderr while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// script returns the absolute path of a script in testdata/flufl.
func script(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "flufl", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startPy starts lockctl.py for lockfile, as given (relative to cwd if
// relative), with lockctl's flags in args. The process ends with the test.
func startPy(t *testing.T, cwd, lockfile string, args ...string) *pyLock {
	t.Helper()
	cmd := exec.Command(testenv.FluflPython(t), append([]string{script(t, "lockctl.py"), lockfile}, args...)...)
	cmd.Dir = cwd
	return startPyCmd(t, cmd)
}

// startPyCmd is startPy for a command of the caller's making, such as
// lockctl.py run in another pid namespace.
func startPyCmd(t *testing.T, cmd *exec.Cmd) *pyLock {
	t.Helper()
	p := &pyLock{t: t, cmd: cmd, replies: make(chan pyReply), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.exited)
		defer p.cmd.Wait()
		defer close(p.replies)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r pyReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = pyReply{Error: "BadReply", Message: sc.Text()}
			}
			p.replies <- r
		}
	}()
	t.Cleanup(p.stop)
	p.decode(p.reply("start"), &p.info)
	return p
}

// stop ends the process, killing it if it does not end by itself (it
// may be waiting in lock()), and waits for it.
func (p *pyLock) stop() {
	p.stdin.Close()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-p.replies:
			if !ok {
				<-p.exited
				return
			}
		case <-timer.C:
			p.cmd.Process.Kill()
		}
	}
}

// exit ends the process without unlocking, and waits for it.
func (p *pyLock) exit() {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.stdin, "exit"); err != nil {
		p.t.Fatal(err)
	}
	p.stop()
}

func (p *pyLock) reply(what string) pyReply {
	p.t.Helper()
	select {
	case r, ok := <-p.replies:
		if ok {
			return r
		}
	case <-time.After(waitBound):
	}
	p.t.Fatalf("python %s: no reply; stderr:\n%s", what, p.stderr.String())
	return pyReply{}
}

// send runs a lockctl command and returns its result, or the Python
// exception as a *pyError, or another error if the process does not
// answer. Unlike the other methods it may be called from any goroutine.
func (p *pyLock) send(command string) (json.RawMessage, error) {
	if _, err := fmt.Fprintln(p.stdin, command); err != nil {
		return nil, fmt.Errorf("python %s: %w; stderr:\n%s", command, err, p.stderr.String())
	}
	select {
	case r, ok := <-p.replies:
		if !ok {
			break
		}
		if r.Error != "" {
			return nil, &pyError{Name: r.Error, Message: r.Message}
		}
		return r.OK, nil
	case <-time.After(waitBound):
	}
	return nil, fmt.Errorf("python %s: no reply; stderr:\n%s", command, p.stderr.String())
}

// call is send, failing t if the process does not answer.
func (p *pyLock) call(command string) (json.RawMessage, error) {
	p.t.Helper()
	raw, err := p.send(command)
	var pe *pyError
	if err != nil && !errors.As(err, &pe) {
		p.t.Fatal(err)
	}
	return raw, err
}

// must runs a command that must succeed, decoding its result into v.
func (p *pyLock) must(command string, v any) {
	p.t.Helper()
	raw, err := p.call(command)
	if err != nil {
		p.t.Fatalf("python %s: %v", command, err)
	}
	if v != nil {
		p.decode(pyReply{OK: raw}, v)
	}
}

// mustRaise runs a command that must raise exception name.
func (p *pyLock) mustRaise(command, name string) {
	p.t.Helper()
	raw, err := p.call(command)
	var pe *pyError
	if !errors.As(err, &pe) || pe.Name != name {
		p.t.Fatalf("python %s = %s, %v; want %s", command, raw, err, name)
	}
}

func (p *pyLock) decode(r pyReply, v any) {
	p.t.Helper()
	if r.Error != "" {
		p.t.Fatalf("python: %s: %s; stderr:\n%s", r.Error, r.Message, p.stderr.String())
	}
	if err := json.Unmarshal(r.OK, v); err != nil {
		p.t.Fatalf("python reply %s: %v", r.OK, err)
	}
}

func (p *pyLock) state() string {
	p.t.Helper()
	var s string
	p.must("state", &s)
	return s
}

func (p *pyLock) isLocked() bool {
	p.t.Helper()
	var b bool
	p.must("is_locked", &b)
	return b
}

// details returns flufl's Lock.details: hostname, pid, lock file.
func (p *pyLock) details() flock.Details {
	p.t.Helper()
	var d []any
	p.must("details", &d)
	if len(d) != 3 {
		p.t.Fatalf("python details = %v", d)
	}
	host, _ := d[0].(string)
	pid, _ := d[1].(float64)
	file, _ := d[2].(string)
	return flock.Details{Hostname: host, PID: int(pid), LockFile: file}
}

// mustNotExist fails t unless path is gone.
func mustNotExist(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s %s: Lstat = %v; want it removed", what, path, err)
	}
}

// checkContents checks that the lock file holds exactly claim, which has
// flufl's shape: path, host, pid and a random number below 2^63, joined
// by sep, with no newline. Go's random field is that number zero-padded to
// 19 digits and followed by a 15-digit namespace tag.
func checkContents(t *testing.T, lockPath, claim, sep, lockField, host string, pid int) {
	t.Helper()
	got, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != claim {
		t.Errorf("lock file holds %q; want exactly the claim %q", got, claim)
	}
	q := regexp.QuoteMeta
	re := regexp.MustCompile(`^` + q(lockField) + q(sep) + q(host) + q(sep) + strconv.Itoa(pid) + q(sep) + `([0-9]{1,19}|[0-9]{34})$`)
	m := re.FindStringSubmatch(string(got))
	if m == nil {
		t.Errorf("lock file %q does not match %v", got, re)
		return
	}
	if _, err := strconv.ParseInt(m[1][:min(len(m[1]), 19)], 10, 64); err != nil {
		t.Errorf("random part %s: %v; want below 2^63", m[1], err)
	}
}

// TestInteropAlternate: Go and Python take the lock in turn, 100 times
// each. Each starts to acquire as soon as the other has taken its turn,
// so each waits for a holder of the other language. Inside, an O_EXCL
// marker catches any overlap, and the log must alternate go/py exactly.
func TestInteropAlternate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 100-round alternation with Python takes about a minute; it runs without -short, as under .ci/test")
	}
	t.Parallel()
	python := testenv.FluflPython(t)
	dir, work := t.TempDir(), t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	const rounds = 100
	ctx := boundedContext(t)

	var stdout, stderr syncBuffer
	cmd := exec.Command(python, script(t, "alternate.py"), lockPath, work, strconv.Itoa(rounds))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pyDone := make(chan error, 1)
	go func() { pyDone <- cmd.Wait() }()
	var pyErr error
	pyExited := false
	t.Cleanup(func() {
		if !pyExited {
			cmd.Process.Kill()
			<-pyDone
		}
	})

	log, marker := filepath.Join(work, "log"), filepath.Join(work, "inside")
	l := newLock(t, lockPath, flock.WithLifetime(time.Minute))
	goWaited := 0
	for n := range rounds {
		// Our turn n is line 2n: wait for Python's turn n-1.
		for lines(t, log) < 2*n {
			select {
			case pyErr = <-pyDone:
				pyExited = true
				t.Fatalf("round %d: Python ended (%v) before its turn; output:\n%s", n, pyErr, stderr.String())
			case <-ctx.Done():
				t.Fatalf("round %d: Python never took its turn; output:\n%s", n, stderr.String())
			case <-time.After(200 * time.Microsecond):
			}
		}
		ok, err := l.TryAcquire()
		if err != nil {
			t.Fatalf("round %d: TryAcquire = %v", n, err)
		}
		if !ok {
			goWaited++
			if err := l.Acquire(ctx); err != nil {
				t.Fatalf("round %d: Acquire = %v", n, err)
			}
		}
		f, merr := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if merr != nil {
			t.Errorf("round %d: Go holds the lock and Python is inside too: %v", n, merr)
		}
		if got := lines(t, log); got != 2*n {
			t.Errorf("round %d: log has %d lines; want %d", n, got, 2*n)
		}
		appendLine(t, log, fmt.Sprintf("go %d", n))
		// Hold a while in half the turns, so that Python both finds the lock
		// held and free; each find costs it a sleep of 10 ms to 2 s.
		if n%2 == 1 {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		if merr == nil {
			f.Close()
			if err := os.Remove(marker); err != nil {
				t.Error(err)
			}
		}
		if err := l.Release(); err != nil {
			t.Fatalf("round %d: Release = %v", n, err)
		}
	}
	select {
	case pyErr = <-pyDone:
		pyExited = true
	case <-ctx.Done():
		t.Fatalf("Python did not finish; output:\n%s", stderr.String())
	}
	if pyErr != nil {
		t.Errorf("alternate.py: %v; output:\n%s", pyErr, stderr.String())
	}
	pyWaited := -1
	fmt.Sscanf(stdout.String(), "waited %d", &pyWaited)
	t.Logf("of %d turns each, Go waited for Python in %d and Python for Go in %d", rounds, goWaited, pyWaited)
	if goWaited == 0 || pyWaited <= 0 {
		t.Errorf("a side never waited for the other (Go %d, Python %d): the test did not exercise exclusion", goWaited, pyWaited)
	}
	var want strings.Builder
	for n := range rounds {
		fmt.Fprintf(&want, "go %d\npy %d\n", n, n)
	}
	if got, _ := os.ReadFile(log); string(got) != want.String() {
		t.Errorf("log of turns:\n%s\nwant go/py alternating %d times", got, rounds)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left in the lock directory: %q", names)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInteropGoBreaksPython: a Python holder stops refreshing; once its
// lifetime and the slop have passed, Go breaks the lock, removes Python's
// claim file, and Python finds that it no longer holds the lock.
func TestInteropGoBreaksPython(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	py := startPy(t, dir, lockPath, "--lifetime=1")
	py.must("lock", nil)
	l := newLock(t, lockPath, flock.WithClockSlop(time.Second))
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatalf("Acquire(ctx) of Python's expired lock = %v", err)
	}
	mustNotExist(t, "Python's claim", py.info.ClaimFile)
	if d, err := l.Details(); err != nil || d.PID != os.Getpid() {
		t.Errorf("Details() = %+v, %v; want ours", d, err)
	}
	if py.isLocked() {
		t.Errorf("python is_locked = true after Go broke its lock")
	}
	py.mustRaise("unlock", "NotLockedError")
	if ok, err := l.IsLocked(); !ok || err != nil {
		t.Errorf("IsLocked() after Python's unlock = %v, %v; want true, nil", ok, err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
	// Python can take it again, and leaves nothing behind.
	py.must("lock 30", nil)
	py.must("unlock", nil)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %q", names)
	}
}

// TestInteropPythonBreaksGo: a Go holder stops refreshing; flufl.lock
// breaks it (its lifetime and lowered CLOCK_SLOP passed) and removes Go's
// claim; Go finds the lock lost, and its Release leaves Python's alone.
func TestInteropPythonBreaksGo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits out a Go lock's lifetime and the clock slop (about 4 s); it runs without -short, as under .ci/test")
	}
	t.Parallel()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	l := newLock(t, lockPath, flock.WithLifetime(time.Second))
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}
	goClaim := l.ClaimPath()
	py := startPy(t, dir, lockPath, "--clock-slop=1")
	py.must("lock 60", nil)
	mustNotExist(t, "Go's claim", goClaim)
	if d := py.details(); d.PID != py.info.PID {
		t.Errorf("python details = %+v; want its own pid %d", d, py.info.PID)
	}
	// Release without asking first: it must move Python's lock file
	// aside, see it is not ours, and put it back.
	if err := l.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("Release() of a lock Python broke = %v; want ErrLockLost", err)
	}
	if !py.isLocked() {
		t.Errorf("python is_locked = false after Go's Release; want Python's lock intact")
	}
	if s, err := l.State(); err != nil || s != flock.Unknown {
		t.Errorf("State() = %v, %v; want %v (another host name)", s, err, flock.Unknown)
	}
	py.must("unlock", nil)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %q", names)
	}
}

// TestInteropDetailsAndState: each side reads the other's details and
// state. State needs the same host name on both sides: Python's is
// socket.getfqdn(), so the Go Lock is given it with WithHostname.
func TestInteropDetailsAndState(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits out Python's and Go's lifetimes (about 7 s); it runs without -short, as under .ci/test")
	}
	t.Parallel()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	// Lifetimes leave a margin: flufl truncates its expiry to whole
	// seconds, so a lifetime of 1 may expire at once.
	py := startPy(t, dir, lockPath, "--lifetime=3")
	host := py.info.Hostname
	l := newLock(t, lockPath, flock.WithHostname(host), flock.WithLifetime(3*time.Second), flock.WithClockSlop(time.Second))
	if goHost, _ := os.Hostname(); goHost != host {
		t.Logf("Python's host name is %q, os.Hostname's %q", host, goHost)
	}

	// Python holds.
	py.must("lock", nil)
	if s := py.state(); s != "ours" {
		t.Errorf("python state = %s; want ours", s)
	}
	checkContents(t, lockPath, py.info.ClaimFile, "|", lockPath, host, py.info.PID)
	want := flock.Details{Hostname: host, PID: py.info.PID, LockFile: lockPath}
	if d, err := l.Details(); err != nil || d != want {
		t.Errorf("Details() of Python's lock = %+v, %v; want %+v", d, err, want)
	}
	var pyExp float64
	py.must("expiration", &pyExp)
	if exp, err := l.Expiration(); err != nil || exp.Sub(pyTime(pyExp)).Abs() > time.Microsecond {
		t.Errorf("Expiration() = %v, %v; Python says %v", exp, err, pyExp)
	}
	if s, err := l.State(); err != nil || s != flock.Unknown {
		t.Errorf("State() of Python's live lock = %v, %v; want %v", s, err, flock.Unknown)
	}
	waitState(t, l, flock.TheirsExpired)
	if s := py.state(); s != "ours_expired" {
		t.Errorf("python state after its lifetime = %s; want ours_expired", s)
	}
	// Python ends without unlocking: its lock is stale.
	py.exit()
	if s, err := l.State(); err != nil || s != flock.Stale {
		t.Errorf("State() of a lock whose Python process ended = %v, %v; want %v", s, err, flock.Stale)
	}
	py2 := startPy(t, dir, lockPath)
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatal(err)
	}

	// Go holds.
	if s := py2.state(); s != "unknown" {
		t.Errorf("python state of Go's live lock = %s; want unknown", s)
	}
	checkContents(t, lockPath, l.ClaimPath(), "|", lockPath, host, os.Getpid())
	want = flock.Details{Hostname: host, PID: os.Getpid(), LockFile: lockPath}
	if d := py2.details(); d != want {
		t.Errorf("python details of Go's lock = %+v; want %+v", d, want)
	}
	py2.must("expiration", &pyExp)
	if exp, _ := l.Expiration(); exp.Sub(pyTime(pyExp)).Abs() > time.Microsecond {
		t.Errorf("python expiration = %v; Go says %v", pyExp, exp)
	}
	if s, _ := l.State(); s != flock.Ours {
		t.Errorf("State() = %v; want %v", s, flock.Ours)
	}
	waitState(t, l, flock.OursExpired)
	// Go counts its own lease over at the earliest moment its bounds on the
	// filesystem's clock allow, a few milliseconds before the expiry itself.
	ctx := boundedContext(t)
	for s := py2.state(); s != "theirs_expired"; s = py2.state() {
		select {
		case <-ctx.Done():
			t.Fatalf("python state of Go's expired lock = %s; want theirs_expired", s)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Past its lease a Release leaves the lock file to breakers, which may
	// be at work already; a breaker removes it.
	if err := l.Release(); !errors.Is(err, flock.ErrLockLost) {
		t.Fatalf("Release() after the lease ran out = %v; want ErrLockLost", err)
	}
	if s := py2.state(); s != "theirs_expired" {
		t.Errorf("python state after Go's late Release = %s; want theirs_expired", s)
	}
	if broke, err := l.Break(true); !broke || err != nil {
		t.Fatalf("Break(true) = %v, %v; want true, nil", broke, err)
	}
	if s := py2.state(); s != "unlocked" {
		t.Errorf("python state after Go's Release = %s; want unlocked", s)
	}
	py2.mustRaise("details", "NotLockedError")
}

// pyTime converts Python's float seconds since the epoch.
func pyTime(sec float64) time.Time {
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9))
}

// waitState polls until l's State is want: an expiry is seen to pass.
func waitState(t *testing.T, l *flock.Lock, want flock.State) {
	t.Helper()
	ctx := boundedContext(t)
	for {
		s, err := l.State()
		if err != nil {
			t.Fatalf("State() = %v", err)
		}
		if s == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("State() = %v; never became %v", s, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestInteropStaleGoHolder: a Go process holding the lock is killed;
// flufl.lock, given the same host name, calls the lock stale.
func TestInteropStaleGoHolder(t *testing.T) {
	if testenv.Role() == "holder" {
		l, err := flock.New(os.Getenv("NFSFLOCK_INTEROP_LOCK"), flock.WithHostname(os.Getenv("NFSFLOCK_INTEROP_HOST")))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		fmt.Println("held")
		time.Sleep(waitBound) // until killed
		t.Fatal("holder was not killed")
	}
	t.Parallel()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	py := startPy(t, dir, lockPath)
	cmd := testenv.Command(t, "holder", "NFSFLOCK_INTEROP_LOCK="+lockPath, "NFSFLOCK_INTEROP_HOST="+py.info.Hostname)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder said %q; want held", line)
	}
	if d := py.details(); d.PID != cmd.Process.Pid {
		t.Errorf("python details = %+v; want the holder's pid %d", d, cmd.Process.Pid)
	}
	if s := py.state(); s != "unknown" {
		t.Errorf("python state of a live Go holder = %s; want unknown", s)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if s := py.state(); s != "stale" {
		t.Errorf("python state of a killed Go holder = %s; want stale", s)
	}
}

// TestInteropRefresh: a holder that keeps refreshing keeps the other
// language out past its lifetime and slop; once it stops, the other
// breaks in. The waiter's timeout is longer than lifetime plus slop, so
// without the refreshes it would break the lock.
func TestInteropRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: Python and Go outlast each other's lifetimes here (about 20 s); it runs without -short, as under .ci/test")
	}
	t.Parallel()
	const lifetime, slop, waiterTimeout = 3 * time.Second, time.Second, 6 * time.Second

	t.Run("GoHolds", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		lockPath := filepath.Join(dir, "app.lck")
		l := newLock(t, lockPath, flock.WithLifetime(lifetime))
		// Python first: its start-up on a loaded machine can outlast the lifetime.
		py := startPy(t, dir, lockPath, "--clock-slop="+strconv.Itoa(int(slop/time.Second)))
		if err := l.Acquire(boundedContext(t)); err != nil {
			t.Fatal(err)
		}
		result := make(chan error, 1)
		go func() {
			_, err := py.send(fmt.Sprintf("lock %d", int(waiterTimeout/time.Second)))
			result <- err
		}()
		refreshes := 0
	refresh:
		for {
			select {
			case err := <-result:
				var pe *pyError
				if !errors.As(err, &pe) || pe.Name != "TimeOutError" {
					t.Fatalf("python lock(timeout=%v) while Go refreshed = %v; want TimeOutError", waiterTimeout, err)
				}
				break refresh
			case <-time.After(300 * time.Millisecond):
				if err := l.Refresh(0); err != nil {
					t.Fatalf("Refresh(0) #%d = %v", refreshes, err)
				}
				refreshes++
			}
		}
		if ok, err := l.IsLocked(); !ok || err != nil {
			t.Errorf("IsLocked() after Python gave up = %v, %v; want true, nil", ok, err)
		}
		// Without refreshes, Python breaks in.
		py.must("lock 60", nil)
		if ok, err := l.IsLocked(); ok || !errors.Is(err, flock.ErrLockLost) {
			t.Errorf("IsLocked() after Python broke in = %v, %v; want false, ErrLockLost", ok, err)
		}
		py.must("unlock", nil)
	})

	t.Run("PythonHolds", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		lockPath := filepath.Join(dir, "app.lck")
		py := startPy(t, dir, lockPath, "--lifetime="+strconv.Itoa(int(lifetime/time.Second)))
		py.must("lock", nil)
		l := newLock(t, lockPath, flock.WithClockSlop(slop), flock.WithTimeout(waiterTimeout))
		result := make(chan error, 1)
		go func() { result <- l.Acquire(context.Background()) }()
		refreshes := 0
	refresh:
		for {
			select {
			case err := <-result:
				if !errors.Is(err, flock.ErrTimeout) {
					t.Fatalf("Acquire() with timeout %v while Python refreshed = %v; want ErrTimeout", waiterTimeout, err)
				}
				break refresh
			case <-time.After(300 * time.Millisecond):
				py.must("refresh", nil)
				refreshes++
			}
		}
		if !py.isLocked() {
			t.Errorf("python is_locked = false after Go gave up")
		}
		if names := dirNames(t, dir); len(names) != 2 {
			t.Errorf("after Go's timeout: %q; want the lock file and Python's claim", names)
		}
		// Without refreshes, Go breaks in.
		l2 := newLock(t, lockPath, flock.WithClockSlop(slop))
		if err := l2.Acquire(boundedContext(t)); err != nil {
			t.Fatalf("Acquire(ctx) once Python stopped refreshing = %v", err)
		}
		if py.isLocked() {
			t.Errorf("python is_locked = true after Go broke in")
		}
	})
}

// TestInteropRelativePath: Python names the lock file relative to its
// working directory, so its claims are relative paths; Go names it
// absolute. Each waits for and breaks the other, removing the other's
// claim, relative or absolute.
func TestInteropRelativePath(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: Python and Go wait out each other's lifetimes in turn (about 6 s); it runs without -short, as under .ci/test")
	}
	t.Parallel()
	for _, tc := range []struct{ name, rel string }{
		{"SameDir", "app.lck"},
		{"SubDir", filepath.Join("sub", "app.lck")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cwd := t.TempDir()
			lockPath := filepath.Join(cwd, tc.rel)
			dir := filepath.Dir(lockPath)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			py := startPy(t, cwd, tc.rel, "--lifetime=1", "--clock-slop=1")
			if !strings.HasPrefix(py.info.ClaimFile, tc.rel+"|") {
				t.Fatalf("python claim %q is not relative", py.info.ClaimFile)
			}

			// Python holds, with a relative claim.
			py.must("lock", nil)
			checkContents(t, lockPath, py.info.ClaimFile, "|", tc.rel, py.info.Hostname, py.info.PID)
			l := newLock(t, lockPath, flock.WithClockSlop(time.Second), flock.WithLifetime(time.Second))
			if d, err := l.Details(); err != nil || d.LockFile != tc.rel {
				t.Errorf("Details() = %+v, %v; want LockFile %q as Python wrote it", d, err, tc.rel)
			}
			if ok, err := l.TryAcquire(); ok || err != nil {
				t.Errorf("TryAcquire() while Python holds = %v, %v; want false, nil", ok, err)
			}
			if err := l.Acquire(boundedContext(t)); err != nil {
				t.Fatalf("Acquire(ctx) of Python's expired lock = %v", err)
			}
			mustNotExist(t, "Python's relative claim", filepath.Join(cwd, py.info.ClaimFile))

			// Go holds, with an absolute claim.
			// flufl checks a timeout before expiry, so a zero timeout never breaks.
			py.mustRaise("lock 0", "TimeOutError")
			mustNotExist(t, "Python's claim after its timeout", filepath.Join(cwd, py.info.ClaimFile))
			goClaim := l.ClaimPath()
			py.must("lock 60", nil) // after Go's lifetime and the slop
			mustNotExist(t, "Go's absolute claim", goClaim)
			if d := py.details(); d.LockFile != tc.rel || d.PID != py.info.PID {
				t.Errorf("python details = %+v; want its own", d)
			}
			if ok, err := l.IsLocked(); ok || !errors.Is(err, flock.ErrLockLost) {
				t.Errorf("IsLocked() = %v, %v; want false, ErrLockLost", ok, err)
			}
			py.must("unlock", nil)
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left %q", names)
			}
		})
	}
}

// TestInteropWindowsSeparator checks, on the format level, the '^'
// separator that flufl.lock uses on Windows (and takes as separator=
// elsewhere): each side writes it byte for byte as the other does, reads
// the other's details, and breaks the other's expired lock, removing its
// claim.
func TestInteropWindowsSeparator(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits out Python's and Go's lifetimes (about 7 s); it runs without -short, as under .ci/test")
	}
	t.Parallel()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "app.lck")
	py := startPy(t, dir, lockPath, "--separator=^", "--lifetime=1", "--clock-slop=1")
	host := py.info.Hostname
	caret := newLock(t, lockPath, flock.WithSeparator("^"), flock.WithHostname(host),
		flock.WithLifetime(2*time.Second), flock.WithClockSlop(time.Second))
	bar := newLock(t, lockPath) // the default separator reads '^' claims too

	py.must("lock", nil)
	checkContents(t, lockPath, py.info.ClaimFile, "^", lockPath, host, py.info.PID)
	want := flock.Details{Hostname: host, PID: py.info.PID, LockFile: lockPath}
	for _, l := range []*flock.Lock{caret, bar} {
		if d, err := l.Details(); err != nil || d != want {
			t.Errorf("Details() = %+v, %v; want %+v", d, err, want)
		}
	}
	if err := caret.Acquire(boundedContext(t)); err != nil {
		t.Fatalf("Acquire(ctx) of Python's expired '^' lock = %v", err)
	}
	mustNotExist(t, "Python's '^' claim", py.info.ClaimFile)

	checkContents(t, lockPath, caret.ClaimPath(), "^", lockPath, host, os.Getpid())
	if d := py.details(); d != (flock.Details{Hostname: host, PID: os.Getpid(), LockFile: lockPath}) {
		t.Errorf("python details of Go's '^' lock = %+v", d)
	}
	if s := py.state(); s != "unknown" {
		t.Errorf("python state of Go's live '^' lock = %s; want unknown", s)
	}
	goClaim := caret.ClaimPath()
	py.must("lock 60", nil)
	mustNotExist(t, "Go's '^' claim", goClaim)
	if ok, err := caret.IsLocked(); ok || !errors.Is(err, flock.ErrLockLost) {
		t.Errorf("IsLocked() = %v, %v; want false, ErrLockLost", ok, err)
	}
	py.must("unlock", nil)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %q", names)
	}
}

// TestInteropOnSSHFS shows why interop needs real link counts: on sshfs,
// which reports a link count of 1, flufl.lock takes the lock but never
// believes it holds it, so its unlock fails and the lock file stays until
// it expires. Go is not misled: it waits, then breaks the expired lock.
func TestInteropOnSSHFS(t *testing.T) {
	t.Parallel()
	a, b := testenv.SSHFS(t)
	py := startPy(t, a, filepath.Join(a, "app.lck"), "--lifetime=2")
	py.must("lock", nil)
	if py.isLocked() {
		t.Errorf("python is_locked = true on sshfs; want false (flufl needs a link count of 2, which sshfs never reports)")
	}
	py.mustRaise("unlock", "NotLockedError")

	l := newLock(t, filepath.Join(b, "app.lck"), flock.WithClockSlop(time.Second))
	if d, err := l.Details(); err != nil || d.PID != py.info.PID {
		t.Errorf("Details() through B after Python's failed unlock = %+v, %v; want Python's lock", d, err)
	}
	if ok, err := l.TryAcquire(); ok || err != nil {
		t.Errorf("TryAcquire() through B = %v, %v; want false, nil", ok, err)
	}
	if err := l.Acquire(boundedContext(t)); err != nil {
		t.Fatalf("Acquire(ctx) through B of Python's expired lock = %v", err)
	}
	mustNotExist(t, "Python's claim", filepath.Join(b, filepath.Base(py.info.ClaimFile)))
	if err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
}
