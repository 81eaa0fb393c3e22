// Nfsflock runs a command while it holds a lock file that is safe on NFS
// and other network filesystems, and that Python's flufl.lock shares: the
// command-line face of package [github.com/nfsflock/nfsflock/flock].
//
// Usage:
//
//	nfsflock [run] [flags] LOCKFILE [--] COMMAND [ARGS...]
//	nfsflock status [--json] [--clock-slop DURATION] LOCKFILE
//	nfsflock break [--force] [--clock-slop DURATION] LOCKFILE
//
// A first argument that is a verb is the verb; a lock file named like one
// is written ./status. Flags come before LOCKFILE; the -- before COMMAND
// may be left out. A DURATION is a number of seconds (2, 0.5) or a Go
// duration (500ms, 1m30s), at most 876000h (100 years).
//
// # run
//
// run, the verb when none is given, waits for the lock, runs COMMAND in a
// process group of its own while it keeps the lock's lifetime refreshed,
// releases the lock, and exits with the command's status, or 128+N when
// signal N ended it. Flags:
//
//	-l, --lifetime DURATION     how long the lock lasts unless refreshed;
//	                            it is refreshed about every third of it (15s)
//	-w, --timeout DURATION      give up waiting after DURATION (default: no
//	                            limit); -w 0 is -n
//	-n, --nonblock              make one attempt and give up if it is held
//	-E, --conflict-exit-code N  exit status when the lock could not be had (75)
//	-k, --kill-after DURATION   grace period between SIGTERM and SIGKILL when
//	                            the lock is lost (5s)
//	    --clock-slop DURATION   how long past its expiry another's lock is
//	                            left alone before it is broken (10s)
//	-q, --quiet                 show nothing while waiting, and say nothing
//	                            when the lock could not be had
//	    --fencing               take a fencing token with the lock and pass
//	                            it to COMMAND as NFSFLOCK_TOKEN
//
// With --fencing, each run takes the next fencing token of the lock (see
// [github.com/nfsflock/nfsflock/flock.Lock.Token]): a number larger than
// that of every earlier holder, kept in side files next to the lock file.
// A command that writes to a store passes it along, and the store refuses
// writes with a smaller token than it has seen, so that a command whose
// lock was lost while it was paused cannot overwrite its successor's work.
// The command's environment holds that one NFSFLOCK_TOKEN only; without
// --fencing it holds none, even if nfsflock's own environment had one.
//
// Like flock(1) it has -n, -w and -E, but the default -E is 75, not 1,
// which the command's own failure would collide with. One attempt, with
// -n, still breaks an expired lock.
//
// SIGINT, SIGTERM and SIGHUP that nfsflock gets while the command runs are
// passed on to the command's process group; one that it gets while it
// waits ends the wait, and nfsflock exits 128+N. A signal that nfsflock was
// started ignoring (as under nohup) stays ignored, by the command too. When
// standard input is the terminal and nfsflock is in its foreground, the
// command's group is put in the foreground, so that the command can read
// the terminal and gets ^C itself; when it is stopped (^Z), nfsflock stops
// too and the shell sees the job stop. The lock is not refreshed while
// nfsflock is stopped, and may expire and be taken by another process.
// When nfsflock is continued, it refreshes the lock before it continues
// the command; if the lock was lost meanwhile, or cannot be confirmed, the
// command is not continued but ended as below, and nfsflock exits 70.
//
// A command that stops without nfsflock (SIGSTOP, or SIGTTIN from reading
// the terminal while its group is in the background) would otherwise keep
// its lock for as long as it stays stopped, refreshed by nfsflock. It
// keeps it for the lock's lifetime at most: a command still stopped then
// is ended as below, the lock is released, and nfsflock exits 70. One
// continued sooner runs on.
//
// If the lock is lost while the command runs (another process broke it
// after nfsflock was paused past its lifetime and the clock slop, the lock
// file was removed or replaced, or refreshing failed until the lifetime
// was gone), the command's process group gets SIGTERM, whatever of it
// still runs after the grace period gets SIGKILL, and nfsflock exits 70.
// A stopped command gets SIGTERM before SIGCONT, so that it runs again
// only to handle SIGTERM.
//
// While nfsflock waits and standard error is a terminal, one line there,
// updated in place, says who holds the lock (pid and host) and when that
// lock expires and may be broken. It shows nothing when standard error is
// not a terminal or with -q.
//
// If nfsflock dies without a chance to stop the command (SIGKILL, SIGQUIT,
// a crash), nobody refreshes the lock any more, and another process takes
// it once it has expired. On Linux and FreeBSD the command then gets
// SIGKILL (a parent-death signal), but processes it started in the
// background of its group do not; on other systems the command runs on.
//
// On Windows, ^C reaches the command from the console, and a lost lock
// ends the command at once (TerminateProcess) without a grace period,
// leaving processes it started running. A command whose nfsflock dies
// runs on. Windows has no job control: neither the command nor nfsflock
// is stopped as above.
//
// # status
//
// status prints the lock's state (flufl.lock's names: unlocked; stale, a
// holder of this host that is not running; theirs_expired, a running
// holder of this host whose lifetime has passed; unknown, any other
// holder), its holder and its expiry. With --json it prints one object:
//
//	{
//	  "path": "/v/app.lck",
//	  "state": "unknown",
//	  "locked": true,
//	  "holder": {"hostname": "h.example.com", "pid": 4242, "lockfile": "/v/app.lck"},
//	  "expires": "2025-11-26T21:40:00.123456789+01:00",
//	  "expired": false,
//	  "breakable": false
//	}
//
// holder is absent when the lock file's contents cannot be parsed, and
// holder and expires are absent when there is no lock. breakable says
// whether the expiry and the clock slop have passed.
//
// Whoever can write the lock's directory controls what a lock file says.
// nfsflock never prints a character of it that does not print: a hostname
// holding one is shown quoted as a Go string ("evil\x1b[2J"), messages
// show such characters escaped (\n, \x1b), and --json writes them as
// \u escapes, the C1 controls that encoding/json leaves raw included.
//
// # break
//
// break removes a lock whose expiry and clock slop have passed, as a
// waiting nfsflock would: it moves the lock file aside, checks that it
// moved the instance it judged expired, and puts it back if not, so it
// never removes a lock that was refreshed or taken anew meanwhile. It
// refuses an unexpired lock, with exit status 75, unless --force is given;
// the holder of a lock broken by force, if it is alive, finds its lock
// lost (an nfsflock holder stops its command and exits 70).
//
// # Exit status
//
//	0-255  run: the command's own status; 128+N if signal N ended it
//	0      status, break: done (break: also when there was no lock)
//	64     usage error
//	70     run: the lock was lost while the command ran, or the command
//	       stayed stopped for longer than the lock's lifetime
//	71     nfsflock failed: the lock file's directory is missing,
//	       permissions, an I/O error
//	75     run: the lock could not be had (-n, -w; -E changes it);
//	       break: the lock has not expired
//	126    run: COMMAND could not be started
//	127    run: COMMAND was not found, or only through a relative entry
//	       of PATH (. or an empty one), which nfsflock refuses, as
//	       os/exec does: write ./COMMAND to run it
//	128+N  run: nfsflock got signal N while it waited for the lock
package main
