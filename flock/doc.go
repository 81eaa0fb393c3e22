// Package flock is a lock file that is safe on NFS and other network
// filesystems: processes on one host or many take turns through it, and a
// lock whose holder died is broken by the others once its lifetime has
// passed. Its files are byte-compatible with Python's flufl.lock.
//
// [New] makes a [Lock]; [Lock.Acquire] or [Lock.TryAcquire] takes the lock,
// [Lock.KeepAlive] keeps it refreshed, and [Lock.Release] gives it up. Most
// programs want package [github.com/nfsflock/nfsflock/guard], which does all
// of that around a function. The sections below describe the protocol that
// the methods' docs refer to.
//
// # Files
//
// For a lock path L, a Lock writes a claim file beside it named
// L|host|pid|random ("|" is [DefaultSeparator]; L is the absolute path),
// whose contents are exactly that name, without a newline. Each acquisition
// creates a claim of its own under a fresh, unpredictable name (with
// O_CREAT|O_EXCL|O_NOFOLLOW, so a planted symlink cannot redirect it) and
// keeps it open until the lock is released. The Lock takes the lock by
// linking its claim to L with link(2), which is atomic on local disks and
// network filesystems alike: exactly one of the processes linking to L
// succeeds, and while it holds the lock, L and its claim are one file under
// two names (where there are no hard links, see Primitives). That file's
// modification time is the lock's expiry (its access time is set to it
// too, but reading the file may change that): the time the lock lapses
// unless refreshed, which is the time of the acquisition or last refresh
// plus the lifetime ([WithLifetime]).
//
// Beside L there may also be L.break, the breakers' lock (see Breaking);
// with [WithFencing], the counter L.fence.N and its hint L.fence (see
// Fencing); and, for moments, names shaped like claims, to which a lock
// file is moved aside or a probe link is made. These names are the lock's:
// New refuses a lock path ending in .break, .fence or .fence.N, in any
// case, or shaped like a claim of another lock (under its own separator
// or flufl.lock's),
// since that lock and the other would break, move or sweep each other's
// files. Anything at L that is not a
// regular file (a symlink, directory, FIFO or device) is reported as
// [ErrNotRegular] and never removed; reads never follow a symlink, never
// block on a FIFO, and read at most 8 KiB.
//
// A Lock removes its own files. Files that crashed processes left are
// swept after a process's first acquisition of the lock, after a break,
// and after a wait at most once a minute; a sweep removes only files whose
// names prove them a dead process's: this hostname, this boot and pid
// namespace (the last 15 digits of a Go claim's name), and a pid that runs
// no process here. Other hosts' files, those of another pid namespace, and
// flufl.lock's claims, which carry no namespace, are never swept.
//
// # Primitives
//
// Linking is flufl.lock's way and the default. Where link(2) is refused
// with no lock file in the way (EPERM, ENOTSUP, ENOSYS or EMLINK, and a
// link between two fresh names of the Lock's own fails too: sshfs with
// -o disable_hardlink, some FUSE and SMB mounts), the Lock switches by
// itself to a portable way for that directory, and later Locks of the
// process start with it. [WithPortable] asks for it from the start, and
// on Windows it is the only way. Both portable ways publish a complete
// claim at L or fail because a file is there, so Locks that link and
// Locks that do not exclude each other, flufl.lock's among them:
//
//   - Rename without replacing: the claim, written and timed, is renamed
//     to L with renameat2(RENAME_NOREPLACE) on Linux, renamex_np
//     (RENAME_EXCL) on macOS, MoveFileEx without MOVEFILE_REPLACE_EXISTING
//     on Windows. It is atomic with its contents, L is then the claim's very
//     file as with a link, and it costs what a link costs.
//   - Exclusive create, where the filesystem refuses that rename too (NFS,
//     FUSE and so sshfs, SMB): L is created with O_CREAT|O_EXCL (exclusive
//     on NFSv3 and later, and over SFTP) and the filesystem's times, the
//     claim's name is written into it, and its expiry set through the
//     descriptor, which the Lock keeps open; the claim file itself is closed
//     and removed at once. A created L shows its creation time as expiry
//     until then, so the expiry is set only if the create took less than
//     half the clock slop; otherwise L is left to expire, under a claim
//     given up. A failure after the create leaves L to expire too, rather
//     than remove by name what may have replaced it. A reader may see L
//     empty for a moment, and a holder that crashes just then leaves an
//     empty or partial L, which is judged by its time alone and broken once
//     it has expired. Created lock files are judged by their contents, not
//     their inode numbers, which a FUSE client may give by path. sshfs
//     changes times by path even through a descriptor, so every time change
//     of a created L (a refresh, the acquisition's expiry, a breaker's
//     extension of L.break) looks at L first, which leaves the window of a
//     pause between that look and the change. It costs a write, and a look
//     per refresh, more than a link.
//
// Without links, a Lock has no fresh path through which to read L past a
// client's attribute cache: the clock slop must cover that cache (see
// Clock slop). Without links or a rename that does not replace, nothing
// moved aside can be put back without risk, so a breaker must never move
// a lock file other than the one it judged: holding the breakers' lock
// (whose lease it extends meanwhile), it waits for one clock slop before
// it reads L again, so that the read shows L as it was once no other
// breaker could change it. Breaking there takes that long, TryAcquire's
// and a timed-out Acquire's break included; and if a breaker's move still
// finds a lock file other than the one it judged (the window of a pause
// described under Leases), that lock file is lost, not put back. Fencing needs
// links or such a rename, and fails without both with
// [ErrLinkUnsupported].
//
// # Ownership
//
// A Lock holds the lock only while L is its own claim: L names the claim
// and, where the filesystem reports file identity (device and inode numbers
// that stay with a file under all its names, as local filesystems and NFS
// do), L is that claim's very file. A file that someone else wrote never
// counts as ours, whatever it contains. Link counts decide nothing: sshfs
// and SMB report a link count of 1, and NFS clients cache them. A link
// whose reply was lost, which NFS retransmits and answers with EEXIST, is
// recognised as ours by the same test. Contents and attributes are read
// from one open descriptor, which makes an NFS client revalidate them.
//
// On Linux, on a local filesystem known by its type (ext2/3/4, XFS, Btrfs,
// tmpfs, ramfs, F2FS, ZFS, bcachefs), a Lock that holds its claim open
// tells whether a file is its lock file by one lstat: the file's device,
// inode and owner are the claim's, and its times are those the Lock last
// set. No other file can have those numbers while the claim is open (on
// tmpfs and ramfs with 32-bit inode numbers, not before four billion files
// later, and then with the same owner and time to the nanosecond too), and
// there lstat answers from the file itself, not a cache; anything else
// (a forgery, a lock taken by another) fails that test and is read in
// full. Elsewhere, and on overlayfs, every look opens and reads the file.
// A Lock learns which from its first claim, and again when a claim lands
// on another device (a filesystem mounted over the directory since).
//
// sshfs numbers files by name and reports no identity: there the contents
// alone decide, and anyone who can write to the mount can forge a lock file
// that names a waiter's claim (claim names show in a directory listing), so
// that two waiters both hold the lock until each looks again. Its client
// also caches attributes by path, even an earlier file's size, so there
// the lock file is read through a fresh hard link of the reader's own,
// whose path has nothing cached.
//
// Every change follows one rule: look before you touch. Nothing at L is
// changed, moved or removed unless the call has just seen that the file
// there is the one it means, its own claim or the very instance it judged
// expired. Times are set only through the descriptor of the Lock's own
// claim, never by path, so they can never land on another holder's lock
// file. Release looks first and leaves a lock file that is not ours as it
// is; then it renames L aside to a fresh name of its own, checks that what
// it moved is still ours, removes it, and puts back anything else with a
// rename that replaces nothing.
//
// # Leases
//
// A holder counts on its lock until the expiry it last wrote, as the
// filesystem stored it (perhaps cut to one or two seconds) and read back
// (where a read shows older times, as sshfs's cache may, the times are set
// again first), by the latest the filesystem's clock may show (see Time
// base): that is its lease. [Lock.Refresh] writes a new expiry through its
// claim and then looks at L; only if L is still its claim does the new
// expiry count, unless it ends sooner than the lease (a shorter lifetime):
// that one counts from the moment it is sent, however the call ends. Once
// the lease has run out, Refresh and Release report [ErrLockLost] and
// leave L as it is, to the breakers: one may be at work on it that very
// moment, and a change could confuse it.
// [Lock.KeepAlive] refreshes at a third of the lifetime, counted by the run
// clock of the time base, which no one sets: a wall clock set back delays
// no refresh, and one that waits through a suspend looks at once when the
// machine wakes.
//
// A holder that pauses past its lease (a SIGSTOP, a swap storm, a suspended
// VM, a stalled NFS server) may find when it resumes that its lock was
// broken and taken by another process. What it can no longer do is harm
// that process's lock: its next call looks first and reports ErrLockLost;
// its refreshes reach only its own orphaned claim, and its Release leaves
// the new lock file alone. What it cannot do is know before it looks: work
// done between resuming and that look runs unprotected, beside the new
// holder's. KeepAlive's context is cancelled when the loss is found, which
// shortens that stretch but cannot close it. A holder whose process runs
// on while its refresh is stuck in a filesystem call (a network
// filesystem that stopped answering this client, while others still
// reach the server) is told by KeepAlive's context when its lease ends,
// by its own clock, without waiting for the call.
//
// One window no lock file closes: a process that pauses, for longer than
// the clock slop, between its last look at the clock and its next
// filesystem call acts on a judgement that has gone stale. A breaker that
// judged a lock expired, or a holder that saw its lease still running, may
// then rename aside a lock file that another process has taken meanwhile.
// The move-aside check finds that what it moved is not what it meant and
// puts it back; but while it was aside, a third process may have taken the
// lock, and then the process whose file was moved learns [ErrLockLost] only
// at its next look, having held the lock beside the third. The code keeps
// that stretch to a few system calls, reading the clock last; only fencing
// tokens protect what the lock guards from it, and from the paused holder
// above.
//
// # Breaking
//
// A waiter breaks a lock file whose expiry and clock slop have passed by
// its own clock, and, with [WithDeadOwnerBreak], one whose holder named
// this host and whose pid runs no process here (never a claim tagged with
// another pid namespace). Expiry is checked before the timeout, so even an
// Acquire whose context is done makes one attempt that breaks an expired
// lock.
//
// Breakers take turns, so that two never break at once: otherwise a breaker
// that judged an instance expired could remove the fresh lock a faster
// breaker had taken meanwhile. A breaker first takes the breakers' lock
// L.break (the same name whatever the separator): a fresh claim-shaped file
// of its own with a lease of 5 s, linked to L.break. Others break L.break
// once its expiry and the larger of the clock slop and 5 s have passed: on
// a local disk on Linux they swap a fresh one of their own in for it
// (renameat2 with RENAME_EXCHANGE), looking just before, and remove what
// came out, so that L.break is never free while a file they have not
// judged stands there; they then hold L.break through their own file. If
// what came out was not the instance they judged, nor breakable all the
// same (a live breaker's, linked in meanwhile), their own file stays to
// stand in for it, and blocks breakers until it expires (after 1 s) and
// the slop passes: it is never swapped back. The file
// swapped in says so after its claim's name, so that only its expiry and
// the slop break it, never its maker's death. Elsewhere they do the same
// in two steps: they move L.break aside and publish their own file there
// at once, before they read what they moved, so that the path is free for
// that moment only; what they moved is removed even when it turns out to
// be a live breaker's file, linked in meanwhile, and is never put back.
// One whose expiry lies further ahead than a breaker of their clock writes was
// planted, or written by a breaker whose clock runs fast (expiries are
// written by the later of the filesystem's clock and the host's): they
// break it once their process has seen it unchanged for 5 s and that slop
// (the Locks of a process on the system's clocks share what they saw);
// until then an acquirer that finds such a file waits up to a second for
// its breaker to be done, as for any live breaker. Its breaker counts its
// 5 s lease by a clock no one sets too, so that a fast wall clock stepped
// back cannot stretch it (where that clock stops in a suspend, as it does
// off Linux and Apple's systems, the lease also ends once the two clocks
// disagree). One more than an hour further ahead than a breaker writes was
// planted, or written by a clock off by more than any allowed for, and is
// broken at once: a planted one delays others by about an hour at most.
// Otherwise a live breaker's L.break is never broken at once, not even by
// [Lock.Break] with force: a real breaker is done in milliseconds, so a
// forced Break waits out its 5 s lease and breaks only an L.break left
// unchanged that long, which someone kept fresh on purpose.
//
// Holding L.break, the breaker checks that L.break is still its own, reads
// L again (through a fresh hard link of its own only where link counts are
// not real, as on sshfs, whose attribute cache is kept per path), checks
// L.break once more, reads the clock last and checks that its lease still
// runs, renames L aside to a fresh name of its own, and checks that what
// it moved is the instance it judged
// (the same contents, expiry and, where reported, inode). Only then does it
// remove it, and the claim it names: only dir(L)/name, where name parses as
// a claim of L, and where the filesystem reports identity only if that is
// the same file. Anything else is put back without replacing a lock file
// taken meanwhile (renameat2 RENAME_NOREPLACE on Linux, renamex_np on
// macOS, link and unlink elsewhere).
//
// A waiter whose link succeeds while another process holds L.break waits
// for that breaker to finish (a real one takes milliseconds; the wait ends
// with its lease, or after 1 s at most) before it looks again and counts
// the lock as held: the breaker, judging by an earlier read, may move the
// file just linked, and put it back only after a third process linked its
// own. The breaker, for its part, moves nothing if its last reads of L and
// of the clock lie more than 0.8 s apart: a pause between them may have let
// L's holder release it and another process take it, and the breaker would
// then move that fresh lock after its taker stopped waiting.
//
// A waiter that may not break an expired lock file (another user's, in a
// sticky directory such as /tmp) keeps waiting, and its timeout says whose
// file is in the way.
//
// # Time base
//
// Expiries are written and judged in the filesystem's time: the clock that
// stamps files in the lock's directory, on a network filesystem the
// server's, not each host's. A Lock learns it from calls it makes anyway:
// setting its claim's times through the descriptor makes the filesystem
// stamp the claim's change time, and the fstat that follows reads it back;
// the Lock's clock readings before the change and after the fstat bracket
// the moment of the stamp. The Lock keeps a lower and an upper bound on the
// filesystem's now, re-anchored at each sample and carried forward from it
// by a run clock that no one sets and that counts the time the machine was
// suspended: CLOCK_BOOTTIME on Linux, CLOCK_MONOTONIC (which counts sleep)
// on Apple's systems, and elsewhere Go's monotonic clock. Leases are still
// judged by the wall clock, never by Go's monotonic reading, which stops
// while a machine sleeps; a run clock that counts sleep only carries the
// bounds from one sample to the next, so that a wall clock stepped (set
// back, or forward by NTP correcting a clock that was behind) moves neither
// bound. Where the run clock is Go's monotonic clock, which stops in a
// suspend, a wall clock that went on further may be a suspend or a step:
// each bound then takes the count that is its safe side (the upper bound
// the longer), so that a suspend never shortens a lease as others count
// it; a step forward there costs waiting. A sample whose bracket the two
// clocks disagree on (a suspend or a step between the readings) teaches
// nothing. Both bounds also take in the Lock's own wall clock, so that the
// time base is never less safe than judging by that clock alone. The Lock
// renews its sample at every acquisition and refresh where setting times
// stamps the change time, and takes a new one wherever it would otherwise
// judge by one that is stale: older than 30 s, taken before the run clock
// and the wall clock came to disagree by more than a second (a clock set,
// or a suspend that Go's monotonic clock did not count: a sample from
// before it is forgotten), or with bounds more than 2 s apart. It writes an
// expiry from the upper bound; judges another's lock expired only by the
// lower bound; and counts its own lease over as soon as the upper bound
// reaches its expiry. A host whose clock disagrees with the filesystem's by
// minutes thus never breaks a live lock early; what its skew costs is
// waiting (a host whose clock is behind waits that much longer to break an
// expired lock), not safety.
//
// Measured on Linux: ext4, XFS, btrfs, tmpfs and overlayfs stamp the
// change time with the kernel's coarse clock (to a few milliseconds), and
// so do NFS servers. sshfs reports a copy of the modification time as the
// change time; there a claim is first written without explicit times and
// its modification time, the server's stamp of the write cut to the second,
// read back with an fstat more, before its expiry is set: for the Lock's
// first claim, and for later ones once the last stamp is stale.
// [Lock.Inspect] and [Lock.Break] of a Lock without a fresh sample, and on
// sshfs a waiter that keeps its claim and a holder that refreshes once
// their sample is stale, write and remove a file of their own beside the
// lock file to learn the clock, and judge by the Lock's own clock if they
// may not. A filesystem
// that reports no times leaves the Lock on its own clock, which it logs
// once per directory at Debug level. A host whose clock differs from the
// filesystem's by more than the clock slop logs it once per directory and
// process at Warn level, naming the offset. A mount that stamps files with
// the client's clock rather than the server's makes the Lock measure that
// client's clock: there the time base helps nothing, and the clock slop
// must cover the hosts' differences as before.
//
// flufl.lock, and nfsflock before the time base, write expiries with their
// host's clock and judge by it: with them in the mix, the slop must still
// cover the difference between their clocks and the filesystem's.
// [Status] reports the measured offset and flags an expiry that lies
// further ahead than the Lock's lifetime and the slop (written by a host
// whose clock ran far ahead, or judged after a clock jumped back); such a
// lock is not broken before its expiry, except by [Lock.Break] with force.
// The breakers' lock is the exception: one whose expiry lies further ahead
// than a breaker writes is broken once it has stood unchanged for its 5 s
// lease and the slop, or at once an hour further still (see Breaking).
//
// # Clock slop
//
// Expiry is read through attributes that a network filesystem may cache:
// NFS revalidates them on open, but sshfs may show them up to 20 s old even
// then. A lock is broken only once its expiry and the clock slop
// ([WithClockSlop], 10 s by default) have passed. The slop must cover how
// stale attributes can be (on sshfs, more than about 21 s) and the clock
// differences with peers that judge by their own clocks (see Time base);
// the time base's own uncertainty is taken on the safe side and needs none.
// Nor does a mount that shows times cut to the second (sshfs) where the
// holder's mount stored a fraction, or a server that cut what the
// holder's mount still shows it: an expiry that falls on a whole second
// is judged to lie up to a second later (two on an even second, FAT's
// grain). FUSE mounts with the kernel's writeback cache (sshfs before
// 3.3, rclone mount --write-back-cache) keep the times of a cached file
// rather than reload the server's, so they may not show another host's
// refresh: do not share locks through them. The slop is also the
// holder's margin: a holder counts on its lock only until the expiry
// itself, and a holder that pauses for less than the slop past it cannot
// be broken (see Leases). Keep clocks synchronised (NTP) all the same,
// pick a lifetime well above the longest pause you expect, and refresh
// well before the expiry.
//
// # Fencing
//
// A lock file cannot stop a holder that paused past its lease from writing
// once it resumes (see Leases). With [WithFencing], each acquisition takes
// a fencing token, which [Lock.Token] reports: a number larger than that of
// every earlier acquisition of the lock by any process on any host. It
// counts only if the lock is still ours after it was taken. The store that
// the lock protects uses the tokens to refuse a holder whose lock was lost
// and who does not know it yet: the holder sends its token with every
// write; the store keeps the largest token it has accepted and, in the
// same atomic step as the write (a transaction, a conditional update, a
// compare-and-swap), refuses a write whose token is smaller. Equal tokens
// are one holder's writes and are accepted. Once the next holder has
// written, the stale holder's writes are refused. Every process that takes
// the lock to write to that store must use fencing.
//
// The counter is the file L.fence.N, whose name holds the last token
// handed out. Taking a token moves it to L.fence.N+1 without ever replacing
// a file, so that of several processes moving it from N only one succeeds,
// and one that paused can never move it back. The hint L.fence holds a
// value the counter has reached, so that the counter is found without
// listing the directory, which a network filesystem may answer from a
// stale cache. Release leaves both. Tokens strictly increase across
// processes, hosts, broken locks, crashes, stale directory listings and
// lost replies, for as long as those files exist.
//
// Only a process that creates L.fence starts a counter, at 1, so that one
// that paused, or read a stale listing, never starts a second one beside
// the live counter. Rather than hand out a token that might not be larger
// than every earlier one, acquisitions with fencing fail with
// [ErrFencing], naming the file at fault and saying how to recover, when
// no counter is found at or above the value in L.fence (the counter was
// deleted, or a process that may still run stopped while starting it; a
// starter proven dead is replaced), when something other
// than a regular file is named like the counter, when the directory lists
// counters under two spellings of the lock's name (on a case-insensitive
// filesystem), and when the counter has reached the largest uint64.
//
// To reset the tokens, delete L.fence (and the counter, if you like): the
// next acquisition starts a counter at 1, and a counter left behind is
// passed over when the new one reaches it. A store that has seen larger
// tokens then refuses every holder until its record is reset too. Reset
// only while no process uses the lock. To move the counter forward
// instead, rename L.fence.N to a larger N. Do not name another lock file
// L.fence.
//
// Fencing assumes that whoever writes to the lock's directory cooperates: a
// process that may rename or create files there can move the counter back
// or plant one far ahead, and the tokens then repeat or run out. The moves
// are not followed by fsync: on a local disk, a power failure can undo the
// last one, and a token handed out just before it may be handed out again
// after it (to processes of a machine that has just restarted). Network
// filesystem servers commit a rename before they reply.
//
// # Sharing with flufl.lock
//
// The files are flufl.lock's to the byte, so Go and Python programs can
// share one lock: each waits while the other holds it, reads the other's
// [Details], and breaks the other's expired lock. Go's claims end in 34
// digits where flufl.lock's end in at most 19; both read both, and both
// separators, "|" and "^" (flufl.lock's on Windows), are understood when
// reading. flufl.lock writes and judges expiries with its host's clock (see
// Time base). Python names its host with socket.getfqdn(): pass [WithHostname]
// with that name, when both run on one host, for [Lock.State] to recognise
// each other's locks as this host's.
//
// flufl.lock decides that it holds the lock by its claim having a link
// count of 2. On sshfs and SMB, which report 1, it never believes it holds
// a lock: no place for Python users. Go's breakers read a lock file through
// a probe link only where link counts are not real anyway, and put back a
// lock file they should not have moved with a rename that leaves the link
// count alone; where that rename is missing (NFS, systems other than Linux
// and macOS) they link it back and unlink the aside name, and a Python
// refresh landing in that moment finds 3 links and takes its lock for
// lost. That happens only to a Python holder refreshing after its lock has
// expired in the breaker's eyes.
//
// flufl.lock knows nothing of L.break: a Python process breaking an expired
// lock removes whatever lock file is there by then, so a fresh lock taken
// in that instant can be removed too. Sweeps never remove Python's claims,
// but [WithDeadOwnerBreak] judges Python holders by hostname and pid alone.
//
// flufl.lock's lock() times its claim when it starts waiting and again
// only after its link has taken the lock, so a Python process that waited
// longer than its lifetime and the slop takes the lock with a lock file
// that looks expired for a moment. A Lock leaves a lock file naming a
// claim without a namespace tag (flufl.lock's), with two links, that
// changed after its expiry alone for two seconds after that change, by its
// change time, and breaks it after that; Python waiters can still break it
// in that moment. Where the filesystem keeps no change time of its own
// (sshfs) or no real link counts, and on Windows, this cannot be seen.
// Pass lock() a timeout no longer than the lifetime.
//
// flufl.lock's CLOCK_SLOP is 10 s, and the clock slop should be at least
// Python's. It cuts expiries to whole seconds, which a Lock waits out
// itself (see Clock slop).
package flock
