//go:build linux

package flock_test

// Attacks by other users on locks in shared directories (issue 13), staged
// with real users: the test binary runs agents as an unprivileged attacker
// (NFSFLOCK_USER_A) and as victims, root processes or an unprivileged
// victim user (NFSFLOCK_USER_B, who shares a group with the attacker).
// Every attack runs in a sticky world-writable directory (1777, like /tmp)
// and in a group-writable one (2775, the shared group), on the local
// filesystem and on the sshfs mount NFSFLOCK_SSHFS_A. Each either is
// defended, or shows the limit README states under "Shared directories
// and other users":
//
//   - whoever can remove the lock file can always break exclusion: in a
//     group-writable directory the attacker can; in a sticky one only the
//     file's owner (and root) can;
//   - sshfs acts on the server as the user who mounted it, whoever asks,
//     and reports no file identity: there a lock trusts contents alone.
//
// There is no NFS client here; NFS reports identity as local filesystems
// do, but has no fs.protected_hardlinks.
//
// .ci/setup creates the users; without them (or as non-root) these tests
// skip, and under CI=true they fail.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
	"github.com/nfsflock/nfsflock/retry"
)

func init() {
	roles["shared-agent"] = roleAgent
}

// agentBound bounds every wait for an agent's answer, so that a hung agent
// fails the test rather than hanging it. It is never a measure of speed.
const agentBound = time.Minute

// A request is one command to an agent: a lock operation on the agent's
// Lock, or a filesystem call made as the agent's user.
type request struct {
	Op       string        `json:"op"`
	Path     string        `json:"path,omitempty"`
	To       string        `json:"to,omitempty"` // rename and link: the new name
	Data     string        `json:"data,omitempty"`
	Times    time.Time     `json:"times,omitzero"` // create, write: atime and mtime
	Lifetime time.Duration `json:"lifetime,omitempty"`
	Slop     time.Duration `json:"slop"`
	Timeout  time.Duration `json:"timeout,omitempty"`
	Force    bool          `json:"force,omitempty"`
}

// A reply answers one request.
type reply struct {
	Err   string   `json:"err,omitempty"`
	Is    []string `json:"is,omitempty"` // the names of the sentinels Err matches
	OK    bool     `json:"ok,omitempty"` // Break's and IsLocked's result
	Names []string `json:"names,omitempty"`
	Text  string   `json:"text,omitempty"`
	UID   int      `json:"uid,omitempty"`
	PID   int      `json:"pid,omitempty"`
}

func (r reply) is(name string) bool { return slices.Contains(r.Is, name) }

var sentinels = []struct {
	name string
	err  error
}{
	{"timeout", flock.ErrTimeout},
	{"lost", flock.ErrLockLost},
	{"notlocked", flock.ErrNotLocked},
	{"breaking", flock.ErrBreaking},
	{"permission", fs.ErrPermission},
	{"exist", fs.ErrExist},
	{"notexist", fs.ErrNotExist},
	{"linkunsupported", flock.ErrLinkUnsupported},
}

func replyErr(err error) reply {
	if err == nil {
		return reply{}
	}
	r := reply{Err: err.Error()}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			r.Is = append(r.Is, s.name)
		}
	}
	return r
}

// roleAgent serves requests, one JSON line each, from standard input, and
// answers each on standard output, until standard input ends.
func roleAgent() int {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	out := json.NewEncoder(os.Stdout)
	var l *flock.Lock
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
		if err := out.Encode(serve(&l, req)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitError
		}
	}
	if l != nil {
		l.Close()
	}
	return 0
}

func serve(l **flock.Lock, req request) reply {
	switch req.Op {
	case "acquire", "release", "islocked", "break", "claim":
		if *l == nil {
			return reply{Err: "no lock: send new first"}
		}
	}
	switch req.Op {
	case "whoami":
		return reply{UID: os.Getuid(), PID: os.Getpid()}
	case "new":
		if *l != nil {
			(*l).Close()
		}
		var err error
		*l, err = flock.New(req.Path,
			flock.WithLifetime(req.Lifetime),
			flock.WithClockSlop(req.Slop),
			flock.WithTimeout(req.Timeout),
			flock.WithRetry(retry.Policy{Initial: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2, Jitter: 0.5}))
		return replyErr(err)
	case "acquire":
		return replyErr((*l).Acquire(context.Background()))
	case "release":
		return replyErr((*l).Release())
	case "islocked":
		ok, err := (*l).IsLocked()
		r := replyErr(err)
		r.OK = ok
		return r
	case "break":
		ok, err := (*l).Break(req.Force)
		r := replyErr(err)
		r.OK = ok
		return r
	case "claim":
		return reply{Text: (*l).ClaimPath()}
	case "create":
		return replyErr(createFile(req.Path, req.Data, req.Times))
	case "write":
		return replyErr(rewriteFile(req.Path, req.Data, req.Times))
	case "remove":
		return replyErr(os.Remove(req.Path))
	case "rename":
		return replyErr(os.Rename(req.Path, req.To))
	case "link":
		return replyErr(os.Link(req.Path, req.To))
	case "list":
		ents, err := os.ReadDir(req.Path)
		r := replyErr(err)
		for _, e := range ents {
			r.Names = append(r.Names, e.Name())
		}
		return r
	}
	return reply{Err: "unknown op " + strconv.Quote(req.Op)}
}

func createFile(path, data string, times time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	return finishFile(f, data, times)
}

// rewriteFile writes data over the contents of the existing file path.
func rewriteFile(path, data string, times time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	return finishFile(f, data, times)
}

func finishFile(f *os.File, data string, times time.Time) error {
	_, err := f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !times.IsZero() {
		err = os.Chtimes(f.Name(), times, times)
	}
	return err
}

// An agent is a child process that serves requests as one user.
type agent struct {
	t       *testing.T
	name    string
	stdin   io.WriteCloser
	replies chan reply // closed when the agent's output ends
	uid     int
	pid     int
}

// startAgent starts an agent running as u, or as this process's user (root)
// if u is nil.
func startAgent(t *testing.T, name string, u *testenv.User) *agent {
	t.Helper()
	var cmd *exec.Cmd
	if u == nil {
		cmd = testenv.Child(t, "shared-agent")
	} else {
		cmd = testenv.ChildAs(t, *u, "shared-agent")
		name += " (" + u.Name + ")"
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	a := &agent{t: t, name: name, stdin: stdin, replies: make(chan reply, 16)}
	go func() {
		defer close(a.replies)
		dec := json.NewDecoder(stdout)
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				return
			}
			a.replies <- r
		}
	}()
	t.Cleanup(func() {
		// At the end of its input the agent closes its Lock and exits.
		stdin.Close()
		bound := time.NewTimer(agentBound)
		defer bound.Stop()
		for open := true; open; {
			select {
			case _, open = <-a.replies:
			case <-bound.C:
				t.Errorf("%s did not exit; killing it", name)
				cmd.Process.Kill()
				bound.Reset(agentBound)
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	r := a.do(request{Op: "whoami"})
	a.uid, a.pid = r.UID, r.PID
	if u != nil && a.uid != int(u.UID) {
		t.Fatalf("%s runs as uid %d; want %d", name, a.uid, u.UID)
	}
	return a
}

// send sends req without waiting for the reply, which recv reads.
func (a *agent) send(req request) {
	a.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.stdin.Write(append(b, '\n')); err != nil {
		a.t.Fatalf("%s: sending %s: %v", a.name, req.Op, err)
	}
}

// recv returns the reply to the oldest request sent and not yet answered.
func (a *agent) recv() reply {
	a.t.Helper()
	select {
	case r, ok := <-a.replies:
		if !ok {
			a.t.Fatalf("%s exited", a.name)
		}
		return r
	case <-time.After(agentBound):
		a.t.Fatalf("%s did not answer within %v", a.name, agentBound)
	}
	panic("unreachable")
}

// answered reports whether a reply is waiting to be read.
func (a *agent) answered() bool { return len(a.replies) > 0 }

func (a *agent) do(req request) reply {
	a.t.Helper()
	a.send(req)
	return a.recv()
}

// must is do for a request that must succeed.
func (a *agent) must(req request) reply {
	a.t.Helper()
	r := a.do(req)
	if r.Err != "" {
		a.t.Fatalf("%s: %s %s: %s", a.name, req.Op, req.Path, r.Err)
	}
	return r
}

// newLock makes the agent's Lock for path, with a lifetime of a minute,
// the default clock slop and the given timeout.
func (a *agent) newLock(path string, timeout time.Duration) {
	a.t.Helper()
	a.must(request{Op: "new", Path: path, Lifetime: time.Minute, Slop: flock.DefaultClockSlop, Timeout: timeout})
}

// A stage is where an attack is staged: a shared directory, the attacker,
// and who the victims are.
type stage struct {
	dir      string
	lock     string // dir/app.lck
	sticky   bool   // mode 1777; else 2775 with the users' group
	sshfs    bool
	attacker testenv.User
	att      *agent        // runs as attacker
	victim   *testenv.User // nil: the victims are root processes
}

// othersMayRemove reports whether the attacker may remove and replace the
// victims' files: everywhere but in a sticky directory on a filesystem
// that enforces it. sshfs acts as the user who mounted it, whoever asks.
func (s *stage) othersMayRemove() bool { return !s.sticky || s.sshfs }

// victimMayRemove reports whether a victim may remove the attacker's
// files: root always may.
func (s *stage) victimMayRemove() bool { return s.victim == nil || s.othersMayRemove() }

func (s *stage) startVictim(t *testing.T, n int) *agent {
	return startAgent(t, "victim "+strconv.Itoa(n), s.victim)
}

// forEachStage runs attack, as parallel subtests, in a sticky and in a
// group-writable directory, on the local filesystem and on sshfs, with
// root processes and with the victim user as victims.
func forEachStage(t *testing.T, attack func(t *testing.T, s *stage)) {
	t.Helper()
	a, b := testenv.Users(t)
	for _, fsName := range []string{"local", "sshfs"} {
		for _, sticky := range []bool{true, false} {
			for _, victim := range []*testenv.User{nil, &b} {
				dirName, victimName := "group", "root-victims"
				if sticky {
					dirName = "sticky"
				}
				if victim != nil {
					victimName = "user-victims"
				}
				t.Run(fsName+"/"+dirName+"/"+victimName, func(t *testing.T) {
					t.Parallel()
					s := &stage{sticky: sticky, sshfs: fsName == "sshfs", attacker: a, victim: victim}
					s.dir = sharedDir(t, s, a.GID)
					// Started after the directory was made, so that the
					// agent has exited (and closed its files) by the time
					// the directory is removed: sshfs keeps open files that
					// are removed under hidden names.
					s.att = startAgent(t, "attacker", &a)
					if s.sshfs {
						checkReach(t, s)
					}
					s.lock = filepath.Join(s.dir, "app.lck")
					attack(t, s)
				})
			}
		}
	}
}

// sharedDir makes the stage's shared directory.
func sharedDir(t *testing.T, s *stage, gid uint32) string {
	t.Helper()
	var parent string
	if s.sshfs {
		parent, _ = testenv.SSHFS(t)
	} else {
		parent = testenv.ReachableDir(t)
	}
	dir := filepath.Join(parent, "shared")
	mode := 0o775 | fs.ModeSetgid
	if s.sticky {
		mode = 0o777 | fs.ModeSticky
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkReach checks that the attacker can create files in the shared
// directory on sshfs: FUSE lets nobody but the user who mounted in, unless
// the mount has allow_other.
func checkReach(t *testing.T, s *stage) {
	t.Helper()
	probe := filepath.Join(s.dir, "probe")
	if r := s.att.do(request{Op: "create", Path: probe}); r.Err != "" {
		testenv.Missing(t, "the test user %s cannot use the sshfs mount %s=%s: %s (FUSE lets other users in only with -o allow_other, which .ci/setup gives; run .ci/teardown, then .ci/setup)",
			s.attacker.Name, testenv.SSHFSAEnv, os.Getenv(testenv.SSHFSAEnv), r.Err)
	}
	s.att.must(request{Op: "remove", Path: probe})
}

// claimOf waits until the directory listing, as att sees it, shows a claim
// of lock made by process pid, and returns its path.
func claimOf(t *testing.T, att *agent, lock string, pid int) string {
	t.Helper()
	dir, base := filepath.Split(lock)
	deadline := time.Now().Add(agentBound)
	for time.Now().Before(deadline) {
		for _, name := range att.must(request{Op: "list", Path: dir}).Names {
			f := strings.Split(name, "|")
			if len(f) == 4 && f[0] == base && f[2] == strconv.Itoa(pid) {
				return filepath.Join(dir, name)
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no claim of pid %d appeared in %s", pid, dir)
	return ""
}

// forgedSize is the size of every forged lock file: contents that keep one
// size read the same through sshfs, which cuts a read at the size it
// cached for the path.
const forgedSize = 512

// forge makes the lock file, which att owns, name claim, with an expiry
// an hour ahead.
func forge(t *testing.T, att *agent, lock, claim string) {
	t.Helper()
	att.must(request{Op: "write", Path: lock, Data: fmt.Sprintf("%-*s", forgedSize, claim), Times: time.Now().Add(time.Hour)})
	if b, err := os.ReadFile(lock); err != nil || strings.TrimSpace(string(b)) != claim {
		t.Fatalf("the forged lock file holds %q, %v; want %q", b, err, claim)
	}
}

// regressed fails t with the symptom of a protocol bug that these tests
// found (issue 13) and that was fixed since: it must not come back.
func regressed(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("regression of a bug found by the shared-directory attacks: "+format, args...)
}

// patience is the timeout of an Acquire that is expected to time out (or
// may), which the test then waits out; or else of one expected to succeed,
// which only bounds how long a slow machine may take.
func patience(timeoutExpected bool) time.Duration {
	if timeoutExpected {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// ownerMessage is what a waiter's timeout says about an expired file that
// it may not break.
const ownerMessage = "only that user or root can break it"

// TestSharedForgedContents: the attacker plants the lock file with an
// expiry far ahead, reads each waiter's claim name from the directory
// listing as it appears and writes it into the lock file: first the first
// waiter's, then the second's. Where the filesystem reports file identity,
// a Lock holds the lock only if the lock file is its claim's very file, so
// neither waiter takes the bait and both time out. sshfs has no identity:
// contents alone decide there, and both waiters hold the lock at once
// until the first looks again (the documented limit).
func TestSharedForgedContents(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att := s.att
		v1, v2 := s.startVictim(t, 1), s.startVictim(t, 2)
		att.must(request{Op: "create", Path: s.lock, Data: fmt.Sprintf("%-*s", forgedSize, "planted"), Times: time.Now().Add(time.Hour)})
		// Where the forgery fails, both waiters wait out the timeout; on
		// sshfs they return as soon as they take the bait.
		timeout := patience(!s.sshfs) + time.Second
		v1.newLock(s.lock, timeout)
		v2.newLock(s.lock, timeout)

		v1.send(request{Op: "acquire"})
		forge(t, att, s.lock, claimOf(t, att, s.lock, v1.pid))
		if !s.sshfs && v1.answered() {
			t.Skipf("the first waiter gave up before the forgery was in place: this machine is too slow to stage the attack within the waiter's timeout of %v", timeout)
		}
		if s.sshfs {
			if r := v1.recv(); r.Err != "" {
				t.Fatalf("on sshfs, a waiter whose claim the lock file names holds the lock; Acquire = %s", r.Err)
			}
		} else {
			// The forgery stays in place a while, for the waiter to see.
			time.Sleep(500 * time.Millisecond)
		}
		v2.send(request{Op: "acquire"})
		forge(t, att, s.lock, claimOf(t, att, s.lock, v2.pid))
		r2 := v2.recv()

		if s.sshfs {
			if r2.Err != "" {
				t.Fatalf("on sshfs, the second waiter's Acquire = %s; want it to take the forged lock too (contents alone decide there)", r2.Err)
			}
			t.Log("documented limit: on sshfs, a forged lock file made two waiters hold the lock at once")
			if r := v1.do(request{Op: "islocked"}); r.OK || !r.is("lost") {
				t.Errorf("first waiter: IsLocked() = %v, %s; want false, lock lost (the lock file names another claim)", r.OK, r.Err)
			}
			return
		}
		r1 := v1.recv()
		for i, r := range []reply{r1, r2} {
			if !r.is("timeout") {
				t.Errorf("waiter %d: Acquire = %q; want a timeout: a lock file that is not its claim's file is not its lock", i+1, r.Err)
			}
		}
	})
}

// TestSharedPlantedBreakersLock: the attacker plants the breakers' lock
// with an expiry far ahead, which no breaker of a right clock writes, in
// front of an expired lock. A waiter breaks it once it has stood unchanged
// for a breaker's lease and the slop (15 s with the default slop: a live
// breaker whose clock runs fast writes such expiries too), and then the
// expired lock, and takes the lock, wherever it may remove the attacker's
// file. In a sticky directory a user cannot: the expired lock is
// contention, and the timeout says whose file is in the way.
func TestSharedPlantedBreakersLock(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att, v := s.att, s.startVictim(t, 1)
		// An expired lock of the victim's own, whose holder is gone.
		v.must(request{Op: "create", Path: s.lock, Data: s.lock + "|gone.example|4242|1", Times: time.Now().Add(-time.Hour)})
		att.must(request{Op: "create", Path: s.lock + ".break", Data: s.lock + "|attacker.example|1|1", Times: time.Now().Add(time.Hour)})
		v.newLock(s.lock, 25*time.Second)
		r := v.do(request{Op: "acquire"})
		if s.victimMayRemove() {
			if r.Err != "" {
				t.Fatalf("Acquire = %s; want the planted breakers' lock and the expired lock broken", r.Err)
			}
			checkNamesClaim(t, v, s.lock)
			return
		}
		checkOwnerTimeout(t, s, r)
	})
}

// checkOwnerTimeout checks that r is a timeout that says the attacker's
// expired file was in the way.
func checkOwnerTimeout(t *testing.T, s *stage, r reply) {
	t.Helper()
	wantUID := fmt.Sprintf("uid %d", s.attacker.UID)
	switch {
	case r.is("timeout") && strings.Contains(r.Err, wantUID) && strings.Contains(r.Err, ownerMessage):
	case r.is("timeout") && strings.Contains(r.Err, fmt.Sprintf("uid %d", s.victim.UID)):
		regressed(t, "the timeout names the owner of the lock file (the victim, uid %d), not of the breakers' lock that refused the break (uid %d): %s", s.victim.UID, s.attacker.UID, r.Err)
	case r.is("timeout") && !strings.Contains(r.Err, ownerMessage):
		regressed(t, "another user's expired lock file with a link count of 1 is never broken, and the timeout says nothing of why: fs.protected_hardlinks refuses the breaker's probe link to it (recheck probes wherever the Lock has not learned that the filesystem reports identity): %s", r.Err)
	default:
		t.Errorf("Acquire = %q; want a timeout saying the expired file is owned by %s: %s", r.Err, wantUID, ownerMessage)
	}
}

// checkNamesClaim checks that the lock file names v's claim.
func checkNamesClaim(t *testing.T, v *agent, lock string) {
	t.Helper()
	claim := v.must(request{Op: "claim"}).Text
	if b, err := os.ReadFile(lock); err != nil || strings.TrimSpace(string(b)) != claim {
		t.Errorf("the lock file holds %q, %v; want the claim %q", b, err, claim)
	}
}

// TestSharedBreakersLockInTheWay: the attacker keeps a breakers' lock in
// front of an expired lock, fresh enough to look like a breaker at work,
// so that no waiter ever breaks the lock. Break says who holds it and
// breaks nothing; Break with force overrides it (issue 13.2), wherever the
// breaker may remove the attacker's file.
func TestSharedBreakersLockInTheWay(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att, v := s.att, s.startVictim(t, 1)
		v.must(request{Op: "create", Path: s.lock, Data: s.lock + "|gone.example|4242|1", Times: time.Now().Add(-time.Hour)})
		att.must(request{Op: "create", Path: s.lock + ".break", Data: s.lock + "|attacker.example|77|1", Times: time.Now().Add(3 * time.Second)})
		v.newLock(s.lock, time.Second)
		r := v.do(request{Op: "break"})
		if r.OK || !r.is("breaking") || !strings.Contains(r.Err, `pid 77 on host "attacker.example"`) {
			t.Errorf(`Break(false) = %v, %q; want false and ErrBreaking saying pid 77 on host "attacker.example"`, r.OK, r.Err)
		}
		if _, err := os.Stat(s.lock); err != nil {
			t.Errorf("the lock file is gone after Break(false) gave up: %v", err)
		}
		r = v.do(request{Op: "break", Force: true})
		// False and nil is also what a break says when its re-read took
		// too long to trust (recheckMax), as on a loaded machine through
		// sshfs: it may be tried again.
		for try := 1; try < 3 && s.victimMayRemove() && !r.OK && r.Err == ""; try++ {
			t.Logf("Break(true) = false, nil (a slow re-read?); trying again")
			r = v.do(request{Op: "break", Force: true})
		}
		switch {
		case r.is("breaking"):
			// Break(true) no longer overrides a breakers' lock that looks
			// live, whose breaker would go on to move whatever then stood
			// at the lock path; issue 13.2 asks that force override it.
			regressed(t, "Break(true) refuses a breakers' lock that looks live, so an attacker who keeps a planted one fresh makes an expired lock unbreakable, even by root with force (issue 13.2 asks that force override it): %s", r.Err)
		case s.victimMayRemove() && (!r.OK || r.Err != ""):
			t.Errorf("Break(true) = %v, %q; want true, nil: force overrides the breakers' lock", r.OK, r.Err)
		case !s.victimMayRemove() && (r.OK || !r.is("permission")):
			t.Errorf("Break(true) = %v, %q; want false and permission denied: another user's file in a sticky directory", r.OK, r.Err)
		}
	})
}

// TestSharedClaimReplacedByLink: while a victim waits, the attacker
// replaces its claim with a hard link to a file of the attacker's, whose
// contents are a secret. In a sticky directory the attacker cannot. Where
// it can, the victim publishes that file as the lock file when it links
// its claim's name; it must then see that the lock file is not its claim,
// leave the file's times alone, never quote its contents, and not hold
// the lock through it.
func TestSharedClaimReplacedByLink(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att := s.att
		holder, v := s.startVictim(t, 1), s.startVictim(t, 2)
		holder.newLock(s.lock, time.Minute)
		holder.must(request{Op: "acquire"})
		bait := filepath.Join(s.dir, "bait")
		baitTime := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		const secret = "SECRET: never quoted"
		att.must(request{Op: "create", Path: bait, Data: secret, Times: baitTime})

		v.newLock(s.lock, patience(s.othersMayRemove()))
		v.send(request{Op: "acquire"})
		claim := claimOf(t, att, s.lock, v.pid)
		r := att.do(request{Op: "remove", Path: claim})
		if !s.othersMayRemove() {
			if !r.is("permission") {
				t.Fatalf("the attacker removing the victim's claim in a sticky directory: %q; want permission denied", r.Err)
			}
			holder.must(request{Op: "release"})
			if r := v.recv(); r.Err != "" {
				t.Fatalf("Acquire = %s", r.Err)
			}
			checkNamesClaim(t, v, s.lock)
			return
		}
		if r.Err != "" {
			t.Fatalf("the attacker removing the victim's claim: %s", r.Err)
		}
		att.must(request{Op: "link", Path: bait, To: claim})
		holder.must(request{Op: "release"})
		r = v.recv()
		t.Logf("the victim's Acquire = %q", r.Err)

		if strings.Contains(r.Err, "SECRET") {
			t.Errorf("Acquire = %q quotes the planted file", r.Err)
		}
		baitInfo, err := os.Stat(bait)
		if err != nil {
			t.Fatal(err)
		}
		if r.Err == "" {
			lockInfo, err := os.Stat(s.lock)
			if err != nil {
				t.Fatal(err)
			}
			if os.SameFile(lockInfo, baitInfo) {
				t.Errorf("the victim holds the lock through the planted file")
			}
			checkNamesClaim(t, v, s.lock)
		}
		if b, err := os.ReadFile(bait); err != nil || string(b) != secret {
			t.Errorf("the planted file now holds %q, %v; want it untouched", b, err)
		}
		if s.sshfs {
			// Nothing there tells the claim from a file put in its place.
			if !baitInfo.ModTime().Equal(baitTime) {
				t.Logf("documented limit: on sshfs the victim set the times of the file planted as its claim (now %v)", baitInfo.ModTime())
			}
			return
		}
		switch {
		case !baitInfo.ModTime().Equal(baitTime):
			regressed(t, "the planted file's times were changed to %v: learnIdentity links the claim's name, which now holds the planted file, concludes that ext4 reports no identity, and linked() then sets the times through the lock path (Acquire = %q)", baitInfo.ModTime(), r.Err)
		case r.is("linkunsupported"):
			regressed(t, "fs.protected_hardlinks refuses the victim's link of its claim's name, which now holds another user's file, and Acquire fails at once saying that the filesystem has no hard links: %s", r.Err)
		case r.Err != "" && !r.is("timeout"):
			// Waiting out the timeout is a defence too (whoever may
			// replace files here may make others wait).
			t.Errorf("Acquire = %q; want the lock, or a timeout", r.Err)
		}
	})
}

// TestSharedExpiredLockOfAnotherUser: another user's lock has expired: its
// holder stopped refreshing it; or it is a lone file (link count 1, no
// claim beside it); or it stands behind that user's expired breakers'
// lock. In a sticky directory a user may not remove another's file: that
// is contention, not a failure, and the timeout says whose file it is and
// who may break it. Root, and anyone in a directory without the sticky
// bit, breaks it and takes the lock.
func TestSharedExpiredLockOfAnotherUser(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att := s.att
		expired := time.Now().Add(-time.Hour)
		cases := []struct {
			name  string
			stage func(t *testing.T, v *agent, lock string)
		}{
			{"stopped-holder", func(t *testing.T, v *agent, lock string) {
				// The lock is free: the timeout only bounds a slow
				// filesystem (sshfs, busy with the suites beside this one).
				att.must(request{Op: "new", Path: lock, Lifetime: time.Second, Timeout: patience(false)})
				att.must(request{Op: "acquire"})
			}},
			{"lone-file", func(t *testing.T, v *agent, lock string) {
				att.must(request{Op: "create", Path: lock, Data: lock + "|vm|4242|1", Times: expired})
			}},
			{"behind-breakers-lock", func(t *testing.T, v *agent, lock string) {
				v.must(request{Op: "create", Path: lock, Data: lock + "|vm|4242|1", Times: expired})
				att.must(request{Op: "create", Path: lock + ".break", Data: lock + "|vm|4243|1", Times: expired})
			}},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				v := s.startVictim(t, 1)
				lock := filepath.Join(s.dir, "app"+strconv.Itoa(i)+".lck")
				c.stage(t, v, lock)
				// No clock slop: the stopped holder's lock expires a second
				// after it was taken.
				v.must(request{Op: "new", Path: lock, Lifetime: time.Minute, Timeout: patience(!s.victimMayRemove())})
				r := v.do(request{Op: "acquire"})
				switch {
				case !s.victimMayRemove():
					checkOwnerTimeout(t, s, r)
				case r.Err == "":
				case c.name == "lone-file" && s.victim != nil && r.is("timeout"):
					regressed(t, "another user's expired lock file with a link count of 1 is never broken, even where renaming it is allowed: fs.protected_hardlinks refuses the breaker's probe link to it: %s", r.Err)
				default:
					t.Errorf("Acquire = %s; want the expired lock broken", r.Err)
				}
			})
		}
	})
}

// TestSharedRemoveLockFile: the attacker removes a held lock file. Where
// it may (no sticky bit, or sshfs), exclusion is broken: a second victim
// takes the lock while the first holds it, and the first learns it lost
// the lock at its next look; README states this limit. In a sticky
// directory the attacker can neither remove nor move the lock file, nor
// break it by force.
func TestSharedRemoveLockFile(t *testing.T) {
	t.Parallel()
	forEachStage(t, func(t *testing.T, s *stage) {
		att := s.att
		v1, v2 := s.startVictim(t, 1), s.startVictim(t, 2)
		v1.newLock(s.lock, time.Second)
		v1.must(request{Op: "acquire"})
		r := att.do(request{Op: "remove", Path: s.lock})
		if !s.othersMayRemove() {
			if !r.is("permission") {
				t.Errorf("the attacker removing the lock file: %q; want permission denied", r.Err)
			}
			if r := att.do(request{Op: "rename", Path: s.lock, To: s.lock + ".moved"}); !r.is("permission") {
				t.Errorf("the attacker moving the lock file: %q; want permission denied", r.Err)
			}
			att.newLock(s.lock, time.Second)
			if r := att.do(request{Op: "break", Force: true}); r.OK || !r.is("permission") {
				t.Errorf("the attacker's Break(true) = %v, %q; want false and permission denied", r.OK, r.Err)
			}
			if r := v1.do(request{Op: "islocked"}); !r.OK {
				t.Errorf("IsLocked() = false, %q; want true", r.Err)
			}
			return
		}
		if r.Err != "" {
			t.Fatalf("the attacker removing the lock file: %s", r.Err)
		}
		v2.newLock(s.lock, patience(false))
		if r := v2.do(request{Op: "acquire"}); r.Err != "" {
			t.Fatalf("second victim: Acquire = %s; want the lock, its file removed", r.Err)
		}
		t.Log("documented limit: whoever can remove the lock file can break exclusion")
		if r := v1.do(request{Op: "islocked"}); r.OK || !r.is("lost") {
			t.Errorf("first victim: IsLocked() = %v, %q; want false, lock lost", r.OK, r.Err)
		}
	})
}
