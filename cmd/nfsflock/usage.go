package main

//go:generate go test -run=TestDocsUpToDate -update

// usage is what nfsflock -h prints, and the one source of the command's
// documentation: go generate makes doc.go from it, and TestDocsUpToDate
// fails until it has. Paragraphs are separated by blank lines; a paragraph
// of one line such as "Exit status:" is a section heading, and lines
// indented by two spaces are shown as they are.
const usage = `nfsflock runs a command while it holds a lock file that is safe on NFS and
other network filesystems, and that Python's flufl.lock shares. It is the
command-line face of the Go package github.com/nfsflock/nfsflock/flock.

Usage:

  nfsflock [run] [flags] LOCKFILE [--] COMMAND [ARGS...]
  nfsflock [run] [flags] LOCKFILE -c COMMAND
  nfsflock status [-q] [--json] [flags] LOCKFILE
  nfsflock break [--force] [flags] LOCKFILE
  nfsflock --version

A first argument that is a verb is the verb: write ./status for a lock file
named status. Every verb reads its flags the same way, before LOCKFILE, as
flock(1) does: -n, -w 5 or -w5, -nw 5, --timeout 5 or --timeout=5; -- ends
them. For run, all that follows LOCKFILE is COMMAND and its arguments,
flags included. The -- before COMMAND may be left out, unless COMMAND
begins with a dash. A DURATION is a number of seconds (2, 0.5) or a Go
duration (500ms, 1m30s), at most 876000h (100 years).

  -h, --help                  print this help
  -V, --version               print nfsflock's version: the module's, from
                              the build information

Run:

run, the verb when none is given, waits for the lock, runs COMMAND in a
process group of its own while it keeps the lock's lifetime refreshed,
releases the lock, and exits with the command's status, or 128+N when
signal N ended it. Like flock(1) it has -n, -w and -E, but the default -E
is 75, not 1, which the command's own failure would collide with. An
executable COMMAND without a #! line is run by /bin/sh, as flock(1) runs it
through execvp(3).

  -l, --lifetime DURATION     how long the lock lasts unless refreshed; it is
                              refreshed about every third of it (default 15s);
                              at least 100ms: with a shorter one, a refresh
                              (a write and a read on the filesystem) that a
                              loaded machine or a slow server delays by some
                              tens of milliseconds loses the lock
  -w, --timeout, --wait DURATION
                              give up waiting after DURATION (default: wait as
                              long as it takes); -w 0 is -n
  -n, --nb, --nonblock        make one attempt, which still breaks an expired
                              lock, and give up if the lock is held
  -E, --conflict-exit-code N  exit status when the lock could not be had
                              (default 75)
  -k, --kill-after DURATION   grace period between SIGTERM and SIGKILL when
                              the lock is lost (default 5s)
      --clock-slop DURATION   how long past its expiry another's lock is left
                              alone before it is broken; it must cover clock
                              differences between hosts and how stale the
                              filesystem's attributes can be (default 10s)
  -q, --quiet                 show nothing while waiting and say nothing when
                              the lock could not be had
      --verbose               say how long getting the lock took, as
                              flock(1) does
      --fencing               take a fencing token with the lock and pass it
                              to COMMAND as NFSFLOCK_TOKEN (see Fencing)
      --dead-owner-break      break at once a lock whose holder named this
                              host and whose pid runs no process here; a
                              holder in another pid namespace (a container)
                              under this hostname may be running (see Dead
                              holders)
  -c, --command COMMAND       after LOCKFILE: run COMMAND with sh -c, as
                              flock(1) does
  -x, -e, --exclusive         accepted, as in flock(1): every lock is
                              exclusive
  -s, --shared                refused: a lock file taken with link(2) has
                              one holder at a time
  -o, --close                 accepted, as in flock(1): COMMAND never holds
                              the lock itself, which is released when it
                              ends, whatever it left running
  -u, --unlock                refused: nfsflock holds the lock for COMMAND's
                              run; break removes a lock left behind
  -F, --no-fork               refused: nfsflock stays while COMMAND runs, to
                              keep the lock refreshed

While nfsflock waits and standard error is a terminal, one line there,
updated in place, says who holds the lock (pid and host) and when that lock
expires and may be broken. It shows nothing when standard error is not a
terminal, or with -q. An expired lock file of another user in a sticky
directory (mode 1777, like /tmp) may be broken only by that user or root:
the line says so, from the modes and owners it sees, and the message when
nfsflock gives up (-n, -w) says so when breaking it was refused.

SIGINT, SIGTERM, SIGHUP and SIGQUIT that nfsflock gets while the command
runs are passed on to the command's process group; one that it gets while
it waits ends the wait, and nfsflock exits 128+N. SIGHUP or SIGINT that
nfsflock was started ignoring (as under nohup, or in a script's
background job) stays ignored, by the command too; Go's runtime, which
nfsflock is built on, does not keep SIGTERM, SIGQUIT or SIGPIPE ignored:
the command gets those at their defaults.
nfsflock survives writing to a pipe whose reader has gone (its messages are
lost), and the command still gets SIGPIPE for its own writes.

If the lock is lost while the command runs (another process broke it after
nfsflock was paused past its lifetime and the clock slop, the lock file was
removed or replaced, or refreshing failed until the lifetime was gone), the
command's process group gets SIGTERM, whatever of it still runs after the
grace period of -k gets SIGKILL, and nfsflock exits 70. A stopped command
gets SIGTERM before SIGCONT, so that it runs again only to handle SIGTERM.

When nfsflock or its command stops or dies:

When standard input and output are the terminal and nfsflock is in its
foreground, the command's group is put in the foreground, and put there
again when a shell's fg brings nfsflock back, so that the command can read
the terminal and gets ^C and ^Z itself. Otherwise (input from a file or a
pipe, output to a pager) the command stays in the background, and is given
the terminal only once it has stopped to read or write it and the job is
brought to the foreground.

nfsflock catches the stop signals (SIGTSTP, SIGTTIN, SIGTTOU), so that
none stops it alone while its command runs on unrefreshed. Under a shell's
job control, one that reaches nfsflock is passed on to the command as ^Z;
and when the terminal stops the command (^Z, or the terminal read or
written from the background), or the command's group stops by SIGSTOP
while it has the terminal's foreground (an inner nfsflock), nfsflock
freezes the command's whole group (SIGSTOP, for any process of it that
ignores ^Z) and stops too, with the rest of its own process group (a
pipeline, the script that runs it, an outer nfsflock), and the shell sees
the job stop. The lock is not refreshed while nfsflock is stopped: if the
stop outlasts the lock's lifetime, the lock counts as lost. Once continued
(fg or bg), nfsflock refreshes the lock before it continues the command;
if the lock was lost meanwhile, or cannot be confirmed, the command is
ended as above instead of continued, and nfsflock exits 70. Where no shell
could continue nfsflock (no controlling terminal, its process group its
session's own: ssh -t, a container's console, exec from a login shell; or
detached, orphaned, as by "( nfsflock ... & )"), stop signals are
ignored, as the system ignores them there. An nfsflock run by another in
the background of the terminal stops alone when its command reads the
terminal, and the outer one keeps the lock for its lifetime at most.

A command stopped otherwise (SIGSTOP of a command outside the terminal's
foreground, as by a debugger or a scheduler; or the terminal read from the
background where no shell could continue nfsflock) keeps its lock for the
lock's lifetime at most: nfsflock goes on refreshing it, and one still
stopped then is ended as above before it runs again, the lock is released,
and nfsflock exits 70. One continued sooner runs on. SIGSTOP sent to
nfsflock, or to its process group (kill -STOP %1), stops nfsflock but not
the command, which runs on unrefreshed until the lock expires; stop a job
with ^Z or kill -TSTP. A command that another process continues while
nfsflock is stopped runs without its lock refreshed. A program that puts
nfsflock in a process group of its own without job control (timeout(1)
without --foreground) is stopped with it when the command reads the
terminal.

If nfsflock dies without a chance to stop the command (SIGKILL, a crash),
nobody refreshes the lock any more, and another process takes it once it
has expired. So on Unix systems nfsflock starts a watchdog beside the
command, a second nfsflock process whose arguments read nfsflock-watchdog,
which sends SIGKILL to the command's whole process group as soon as
nfsflock is gone: the command and what it runs, in its foreground and
background alike. The command starts only once the watchdog knows its
group: until then, for a few milliseconds, its process is a third copy of
nfsflock (nfsflock-exec), which then executes the command in its place.
Out of the watchdog's reach are a process that has left the group (setsid,
or a process group of its own), one that has changed its user since (sudo,
su), unless nfsflock runs as root, and everything once the watchdog itself
is killed. Where the watchdog cannot start (no /proc and nfsflock's binary
gone), the command starts at once, and itself still gets SIGKILL on Linux
and FreeBSD (a parent-death signal). Once the command has ended by itself,
nfsflock dismisses the watchdog, and what the command left running in the
background runs on, as under flock(1).

On Windows the command runs in a job object: ^C reaches it from the
console, a lost lock ends it and every process it started at once, without
a grace period, and so does nfsflock's death. Windows has no job control:
neither the command nor nfsflock is stopped as above.

Fencing:

With --fencing, COMMAND finds in NFSFLOCK_TOKEN the lock's next fencing
token: a number larger than that of every earlier holder of the lock, kept
in LOCKFILE.fence files beside it. A command that writes to a store passes
the token along, and a store that refuses writes with a smaller token than
it has seen is safe from a command whose lock was lost while it was paused.
The command's environment holds that one NFSFLOCK_TOKEN only: without the
flag it holds none, even if nfsflock's own environment had one.

Dead holders:

With --dead-owner-break, a lock whose holder named this host and whose pid
runs no process here is broken at once, without waiting for its expiry and
the clock slop. The pid test can be wrong in the dangerous direction: a
holder in another pid namespace (a container) under this hostname, or on
another machine that uses this hostname, runs although its pid runs nothing
here. nfsflock's own claims say which pid namespace they come from and are
never judged dead from another, but flufl.lock's do not. Use it only where
every process sharing the lock runs in this host's pid namespace.

Status:

status reads the lock file once and says what it shows: whether the lock
is held, by which pid on which host, and when it expires and may be broken;
an expiry more than a day ahead of the filesystem's time (a host whose
clock was wrong), and this host's clock when it is more than a second off
the filesystem's. Its exit status says it to scripts: 0 held, 1 free,
2 expired, 3 stale (see Exit status), so that this works:

  if nfsflock status -q /v/app.lck; then echo held; fi

  -q, --quiet                 print nothing; only the exit status says
      --json                  print one JSON object, as below
      --clock-slop DURATION   as for run; decides "breakable" (default 10s)
      --dead-owner-break      as for run; decides "breakable"

  {
    "path": "/v/app.lck",
    "status": "held",
    "state": "unknown",
    "locked": true,
    "holder": {
      "hostname": "h.example.com",
      "pid": 4242,
      "lockfile": "/v/app.lck"
    },
    "claim": "/v/app.lck|h.example.com|4242|7308917433465018353",
    "expires": "2025-11-26T21:40:00.123456789+01:00",
    "expired": false,
    "breakable": false,
    "local": true,
    "alive": true,
    "ours": false,
    "at": "2025-11-26T21:39:31.002003004+01:00",
    "clock_offset": 0.004,
    "far_ahead": false
  }

status is free, held, expired or stale, as the exit status says; state is
flufl.lock's name for it (unlocked, stale, theirs_expired, unknown). holder
and claim are absent when the lock file's contents are not a claim, and
holder, claim and expires when there is no lock. expired and breakable are
judged as of at: breakable says whether a waiting nfsflock with these flags
would break it. local says that the holder named this host, and alive that
a process with its pid runs here. clock_offset is the filesystem's clock
minus this host's, in seconds, as measured from a file written there (0
when not measured), and far_ahead says that the expiry lies more than a
day and the clock slop ahead of the filesystem's time, further than any
holder's lifetime should reach: a planted lock file, or a holder whose
clock runs far ahead.

Break:

break removes a lock whose expiry and clock slop have passed, as a waiting
nfsflock would: it moves the lock file aside, checks that it moved the
instance it judged expired, and puts it back if not, so that it never
removes a lock that was refreshed or taken anew meanwhile. It refuses a
lock that a waiting nfsflock would not break yet (exit 75), saying when it
will, unless --force.

      --force                 break the lock whatever its expiry; its holder,
                              if alive, finds the lock lost (an nfsflock
                              holder ends its command, exits 70). A holder
                              that looks dead here may run in another pid
                              namespace (a container) under this hostname
      --clock-slop DURATION   as for run (default 10s)
      --dead-owner-break      as for run: break at once a lock whose holder
                              named this host and runs no process here

Text from lock files:

Whoever can write the lock's directory controls what a lock file says.
nfsflock never prints a character of it that does not print: a hostname
holding one is shown quoted as a Go string ("evil\x1b[2J"), messages show
such characters escaped (\n, \x1b), and --json writes them as \u escapes,
the C1 controls that encoding/json leaves raw included.

Exit status:

  0-255   run: the command's own status; 128+N if signal N ended it
  0       status: the lock is held, and has not expired;
          break: done, or there was no lock
  1       status: the lock is free: there is no lock file
  2       status: the lock has expired (breakable says whether it may be
          broken yet)
  3       status: the lock is stale: its holder named this host, and no
          process has its pid here (unless in another pid namespace)
  64      usage error
  70      run: the lock was lost while the command ran, or the command
          stayed stopped for longer than the lock's lifetime
  71      nfsflock failed: the lock file's directory is missing, permissions,
          an I/O error
  75      run: the lock could not be had (-n, -w; -E changes it);
          break: the lock may not be broken yet, or another process is
          breaking it
  126     run: COMMAND could not be started
  127     run: COMMAND was not found, or only through a relative entry of
          PATH (. or an empty one), which nfsflock refuses, as Go's os/exec
          does: write ./COMMAND
  128+N   run: nfsflock got signal N while it waited for the lock
`
