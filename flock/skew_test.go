//go:build unix

package flock_test

// Clock skew between real processes: a holder whose clock runs a minute
// slow and a waiter whose clock runs a minute fast share a lock on ext4,
// tmpfs and two sshfs mounts of one directory. Each process is the test
// binary run again, with its clock injected through WithClock. With the
// time base, both write and judge expiries in the filesystem's time, and
// the skew does no harm; with it switched off (WithoutTimeBase), the fast
// waiter breaks the slow holder's live lock at once, which the tests
// assert too, so that they prove something.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

// skewedClock is the system clock set d ahead (or behind), monotonic
// readings and all, as a host whose clock is wrong has it.
type skewedClock struct{ d time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.d) }
func (c skewedClock) NewTimer(d time.Duration) retry.Timer {
	return retry.SystemClock.NewTimer(d)
}

// Environment of the skew tests' children.
const (
	envSkewLock     = "NFSFLOCK_SKEW_LOCK"     // the lock path, through the child's own mount
	envSkewReferee  = "NFSFLOCK_SKEW_REFEREE"  // a local directory for the marker
	envSkewClock    = "NFSFLOCK_SKEW_CLOCK"    // the child's clock error, a duration
	envSkewTimeBase = "NFSFLOCK_SKEW_TIMEBASE" // "off" switches the time base off
	envSkewHold     = "NFSFLOCK_SKEW_HOLD"     // how long the holder holds; "kill" to hold until killed, "stdin" until its stdin closes
)

const (
	skewLifetime = 5 * time.Second
	skewSlop     = time.Second
	skewBy       = time.Minute
)

// TestClockSkew: on each filesystem, with the time base on and off, a
// holder a minute slow holds the lock for a while and releases it
// ("held"), or is killed while it holds it ("killed"), while a waiter a
// minute fast waits for the lock.
//
//   - held: the waiter must not take the lock while the holder is inside
//     (a marker file on a local disk, created exclusively, tells), and the
//     holder's Release must find its lock intact.
//   - killed: the waiter must take the lock only once the holder's lease
//     is over by the filesystem's clock, which is this machine's clock
//     (sshfs's server runs here): not before the holder's last write of
//     its expiry plus the lifetime.
//
// With the time base off both must fail: the test asserts the violation.
func TestClockSkew(t *testing.T) {
	if testenv.Role() != "" {
		skewChild(t)
		return
	}
	type place struct {
		name string
		dir  func(t *testing.T) (holderDir, waiterDir string)
	}
	var places []place
	for _, fs := range testenv.Filesystems() {
		if fs.Name != "tempdir" && fs.Name != "tmpfs" {
			continue
		}
		places = append(places, place{name: fs.Name, dir: func(t *testing.T) (string, string) {
			d := fs.Dir(t)
			return d, d
		}})
	}
	places = append(places, place{name: "sshfs", dir: func(t *testing.T) (string, string) { return testenv.SSHFS(t) }})
	// Each case mostly waits (for a hold, or a lifetime, to end), in
	// directories of its own: they all run at once.
	t.Parallel()
	for _, pl := range places {
		t.Run(pl.name, func(t *testing.T) {
			t.Parallel()
			for _, base := range []string{"timebase", "off"} {
				t.Run(base, func(t *testing.T) {
					t.Parallel()
					t.Run("held", func(t *testing.T) {
						t.Parallel()
						hd, wd := pl.dir(t)
						skewHeld(t, hd, wd, base == "off")
					})
					t.Run("killed", func(t *testing.T) {
						t.Parallel()
						hd, wd := pl.dir(t)
						skewKilled(t, hd, wd, base == "off")
					})
				})
			}
		})
	}
}

// skewProc is a child of the skew tests and the lines it reports.
type skewProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser // closing it ends a hold of "stdin"
	lines chan string
	out   strings.Builder
}

func startSkew(t *testing.T, role string, env ...string) *skewProc {
	t.Helper()
	cmd := testenv.Command(t, role, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &skewProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	cmd.Stderr = &p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "skew: "); ok {
				p.lines <- rest
			} else {
				p.out.WriteString(line + "\n")
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// expect returns the next line the child reports, which must start with
// prefix, and the fields after it.
func (p *skewProc) expect(t *testing.T, prefix string) []string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.cmd.Wait()
			t.Fatalf("%s ended before reporting %q:\n%s", p.cmd.Environ()[len(p.cmd.Environ())-1], prefix, p.out.String())
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != prefix {
			t.Fatalf("child reported %q; want %q", line, prefix)
		}
		return f[1:]
	case <-time.After(waitBound):
		t.Fatalf("child reported no %q within %v:\n%s", prefix, waitBound, p.out.String())
	}
	return nil
}

func unixNano(t *testing.T, s string) time.Time {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, n)
}

func skewEnv(lock, referee string, clock time.Duration, off bool, hold string) []string {
	env := []string{envSkewLock + "=" + lock, envSkewReferee + "=" + referee, envSkewClock + "=" + clock.String(), envSkewHold + "=" + hold}
	if off {
		env = append(env, envSkewTimeBase+"=off")
	}
	return env
}

func skewHeld(t *testing.T, holderDir, waiterDir string, off bool) {
	referee := t.TempDir()
	// With the time base, the holder holds for 3 s, which the waiter must
	// wait out. Without it, the holder holds until the waiter has taken
	// the lock (which it does at once, breaking it), however long a busy
	// machine takes to start the waiter: a fixed hold could end first,
	// and the test would prove nothing.
	hold := "3s"
	if off {
		hold = "stdin"
	}
	holder := startSkew(t, "skewholder", skewEnv(filepath.Join(holderDir, "skew.lck"), referee, -skewBy, off, hold)...)
	holder.expect(t, "acquired")
	waiter := startSkew(t, "skewwaiter", skewEnv(filepath.Join(waiterDir, "skew.lck"), referee, skewBy, off, "")...)
	got := waiter.expect(t, "acquired")
	if off {
		holder.stdin.Close()
	}
	overlap := got[1] == "overlap"
	released := strings.Join(holder.expect(t, "released"), " ")
	lost := released != "nil"
	if off {
		if !overlap || !lost {
			t.Errorf("without the time base: waiter overlapped the holder: %v, holder's Release: %s; want an overlap and a lost lock (the test proves nothing otherwise)", overlap, released)
		}
		return
	}
	if overlap {
		t.Errorf("the waiter a minute fast took the lock while the holder a minute slow held it within its lease")
	}
	if lost {
		t.Errorf("holder's Release() = %s; want nil", released)
	}
}

func skewKilled(t *testing.T, holderDir, waiterDir string, off bool) {
	referee := t.TempDir()
	holder := startSkew(t, "skewholder", skewEnv(filepath.Join(holderDir, "skew.lck"), referee, -skewBy, off, "kill")...)
	// The holder's last write of its expiry happened after this.
	written := unixNano(t, holder.expect(t, "acquired")[0])
	holder.cmd.Process.Signal(syscall.SIGKILL)
	holder.cmd.Wait()
	waiter := startSkew(t, "skewwaiter", skewEnv(filepath.Join(waiterDir, "skew.lck"), referee, skewBy, off, "")...)
	took := unixNano(t, waiter.expect(t, "acquired")[0])
	waiter.cmd.Wait()
	if names := dirNames(t, waiterDir); len(names) > 0 {
		t.Logf("left: %q", names)
	}
	leaseEnd := written.Add(skewLifetime)
	t.Logf("the waiter took the lock %v after the killed holder's lease ended (by this machine's clock, the filesystem's)", took.Sub(leaseEnd).Round(time.Millisecond))
	if off {
		if !took.Before(leaseEnd) {
			t.Errorf("without the time base the waiter took the lock only %v after the holder's lease ended; want before it (the test proves nothing otherwise)", took.Sub(leaseEnd))
		}
		return
	}
	if !took.After(leaseEnd) {
		t.Errorf("the waiter broke the lock %v before the holder's lease ended by the filesystem's clock", leaseEnd.Sub(took))
	}
}

// skewChild acts a holder or a waiter of the skew tests.
func skewChild(t *testing.T) {
	clockErr, err := time.ParseDuration(os.Getenv(envSkewClock))
	if err != nil {
		t.Fatal(err)
	}
	opts := []flock.Option{
		flock.WithClock(skewedClock{clockErr}),
		flock.WithLifetime(skewLifetime),
		flock.WithClockSlop(skewSlop),
		flock.WithRetry(retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}),
	}
	if os.Getenv(envSkewTimeBase) == "off" {
		opts = append(opts, flock.WithoutTimeBase())
	}
	l, err := flock.New(os.Getenv(envSkewLock), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	marker := filepath.Join(os.Getenv(envSkewReferee), "inside")
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	switch testenv.Role() {
	case "skewholder":
		before := time.Now()
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire = %v", err)
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("skew: acquired %d\n", before.UnixNano())
		switch hold := os.Getenv(envSkewHold); hold {
		case "kill":
			<-ctx.Done()
			t.Fatal("not killed")
		case "stdin":
			io.Copy(io.Discard, os.Stdin) // until the test closes it
		default:
			d, err := time.ParseDuration(hold)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(d)
		}
		os.Remove(marker)
		err = l.Release()
		switch {
		case err == nil:
			fmt.Println("skew: released nil")
		case errors.Is(err, flock.ErrLockLost):
			fmt.Println("skew: released ErrLockLost")
		default:
			t.Fatalf("Release = %v", err)
		}
	case "skewwaiter":
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire = %v", err)
		}
		took := time.Now()
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		inside := "alone"
		if err != nil {
			inside = "overlap"
		} else {
			f.Close()
			os.Remove(marker)
		}
		fmt.Printf("skew: acquired %d %s\n", took.UnixNano(), inside)
		if err := l.Release(); err != nil {
			t.Fatalf("Release = %v", err)
		}
	default:
		t.Fatalf("unknown role %q", testenv.Role())
	}
}
