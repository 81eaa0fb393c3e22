package flock

import (
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/retry"
)

// The defaults of a Lock, the same as flufl.lock's.
const (
	// DefaultLifetime is how long a lock lasts after each acquisition or
	// refresh before other processes may break it (once the clock slop
	// has passed too), unless [WithLifetime] says otherwise.
	DefaultLifetime = 15 * time.Second

	// DefaultClockSlop is how long past its expiry a lock stays unbroken,
	// to allow for stale attributes and for peers that judge by their own
	// clocks, unless [WithClockSlop] says otherwise.
	DefaultClockSlop = 10 * time.Second

	// DefaultSeparator is what separates the fields of a claim unless
	// [WithSeparator] says otherwise: "|", or "^" on Windows, as in
	// flufl.lock.
	DefaultSeparator = defaultSeparator
)

// Option configures a Lock in [New]; the With functions below make them.
type Option func(*config)

type config struct {
	lifetime    time.Duration
	timeout     time.Duration
	slop        time.Duration
	sep         string
	hostname    string
	policy      retry.Policy
	logger      *slog.Logger
	retryErrnos []syscall.Errno
	clock       retry.Clock
	fs          fsys.FS

	fencing        bool // WithFencing
	deadOwnerBreak bool // WithDeadOwnerBreak
	portable       bool // WithPortable
	noTimeBase     bool // withoutTimeBase

	// For the simulation, which must control every source of chance.
	pid      int                  // withPID; 0 for os.Getpid
	random   func() uint64        // withRandom: claim names' random parts
	runClock func() time.Duration // withRunClock; nil for the system's (timebase.go)
	runStops bool                 // runClock stops while the machine sleeps (withStoppingRunClock)
	onNew    func(*Lock)          // withOnNew: told of each Lock New makes

}

func defaults() config {
	return config{
		lifetime: DefaultLifetime,
		slop:     DefaultClockSlop,
		sep:      DefaultSeparator,
		policy:   retry.Default(),
		logger:   slog.New(slog.DiscardHandler),
		clock:    retry.SystemClock,
		fs:       fsys.OS,
		random:   randomID,
	}
}

// WithLifetime sets how long the lock lasts after each acquisition or
// refresh before other processes may break it (after the clock slop too).
// It must be positive. The default is [DefaultLifetime]. A lifetime no
// longer than an acquisition takes (a few milliseconds on a local disk,
// more on a network filesystem or a loaded machine) may have run out by
// the time Acquire confirms the lock: the attempt then counts as failed,
// its lock file stays until the rules let it be broken, and Acquire may
// never succeed. Keep lifetimes to a second or more outside tests. Where
// the filesystem keeps file times to the second (sshfs), or to two (FAT),
// expiries are rounded up to the next such time, so that no lease comes
// out shorter than the lifetime. An expiry later than the filesystem can
// store (sshfs's times end in 2106) makes Acquire fail with an error
// matching [ErrInvalid].
func WithLifetime(d time.Duration) Option { return func(c *config) { c.lifetime = d } }

// WithTimeout sets the longest that Acquire waits when its context has no
// earlier deadline; Acquire then fails with [ErrTimeout]. Zero, the default,
// means no limit; a negative value is invalid.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithSeparator sets the separator between the fields of the claim: "|"
// (the default, but on Windows) or "^" (the default on Windows, where "|"
// may not be in a file name), flufl.lock's two; New refuses any other,
// whose claims no other Lock would read or sweep. It must occur in neither
// the lock path nor the hostname. Processes sharing a lock need not agree
// on it: both are understood when reading.
func WithSeparator(sep string) Option { return func(c *config) { c.sep = sep } }

// WithHostname sets the hostname written into claims and compared when
// judging whether a holder on this host is still running. The default is
// [os.Hostname]. Python's flufl.lock uses socket.getfqdn(); set this to
// match when both share a lock and State must recognise each other's host.
func WithHostname(name string) Option { return func(c *config) { c.hostname = name } }

// WithClockSlop sets how long past its expiry a lock stays unbroken. It
// must cover, added together, how stale the filesystem's attributes can
// be (NFS attribute caching, sshfs: up to 20 s), the clock differences
// with peers that write expiries with their own clocks (flufl.lock; see
// Time base in the package doc), and the filesystem's time grain (a
// second on sshfs, two on FAT): a Lock that has not yet seen how its
// filesystem cuts times counts a refresh to a shorter lifetime from the
// expiry it sent. (An expiry of another's that falls on a whole second,
// which a mount may have cut, is waited out without the slop; see Clock
// slop in the package doc.) The default is [DefaultClockSlop]; negative is invalid.
func WithClockSlop(d time.Duration) Option { return func(c *config) { c.slop = d } }

// WithRetry sets the backoff between attempts while Acquire waits. The
// default is [retry.Default].
func WithRetry(p retry.Policy) Option { return func(c *config) { c.policy = p } }

// WithLogger sets where the lock logs breaks, restorations and sweeps, at
// Debug and Warn levels. The default discards everything. A nil logger
// keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithRetryErrnos adds errors which, when reading the lock file, mean "try
// again later" rather than failure, for network filesystems that report
// passing faults (flufl.lock's retry_errnos). ENOENT and ESTALE always mean
// the lock file is not there.
func WithRetryErrnos(errnos ...syscall.Errno) Option {
	return func(c *config) { c.retryErrnos = append([]syscall.Errno(nil), errnos...) }
}

// WithClock sets the clock used for expiry times and waiting. Tests use it
// to move time forward without sleeping; nil keeps the system clock.
// Expiries are still written and judged in the filesystem's time, which
// the Lock measures against this clock (see Time base in the package doc):
// a clock moved forward is, to the Lock, a clock that runs ahead.
func WithClock(clock retry.Clock) Option {
	return func(c *config) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// WithFencing makes each acquisition take a fencing token, which
// [Lock.Token] reports: a number larger than that of every earlier
// acquisition of the lock by any process on any host, for as long as the
// counter's side files next to the lock file exist. A store that the lock
// protects rejects a writer whose lock was lost by comparing tokens (see
// Fencing in the package doc). Every process that takes the lock to write
// to that store must use it.
func WithFencing() Option { return func(c *config) { c.fencing = true } }

// WithDeadOwnerBreak lets the Lock break at once, without waiting for its
// lifetime and the clock slop, a lock whose holder's hostname is ours and
// whose pid runs no process here (the [Stale] state).
//
// It is off by default because the pid test can be wrong in the dangerous
// direction: a holder in another pid namespace (a container) that shares
// this hostname, or another machine that reports the same hostname (a
// cloned VM, "localhost"), runs a pid this host may not see, and its live
// lock would be broken. The other error, a pid reused by an unrelated
// process, only delays the break until the lifetime has passed. Use it
// where every process sharing the lock runs in this host's pid namespace
// under a hostname no other machine uses.
func WithDeadOwnerBreak() Option { return func(c *config) { c.deadOwnerBreak = true } }

// WithPortable makes the Lock publish its lock file without hard links,
// as it does by itself where the filesystem refuses them and always on
// Windows: by renaming its claim to the lock path without replacing, or
// where the filesystem cannot do that either, by creating the lock file
// exclusively. Locks that publish with links and locks that publish
// without exclude each other, flufl.lock's among them. See Primitives in
// the package doc for what each way costs.
func WithPortable() Option { return func(c *config) { c.portable = true } }

// withFS replaces the filesystem, for fault injection in tests.
func withFS(f fsys.FS) Option { return func(c *config) { c.fs = f } }

// withoutTimeBase makes the Lock write and judge expiries by its own
// clock alone, as before the time base: for tests that show what the time
// base prevents, and those that stand for time passing with a clock set
// ahead.
func withoutTimeBase() Option { return func(c *config) { c.noTimeBase = true } }

// withPID replaces the process ID written into claims, for the simulation.
func withPID(pid int) Option { return func(c *config) { c.pid = pid } }

// withRandom replaces the source of claim names' random parts, for the
// simulation.
func withRandom(r func() uint64) Option { return func(c *config) { c.random = r } }

// withOnNew has New pass each Lock it makes to f, for the simulation's
// oracle, which asks a breaker's own Lock whether its lease was over
// (guard makes its Locks out of the oracle's sight).
func withOnNew(f func(*Lock)) Option { return func(c *config) { c.onNew = f } }

// withRunClock replaces the clock that carries the time base's bounds and
// times the keep-alive (timebase.go), one that no one sets, for the
// simulation, whose hosts' wall clocks may be set.
func withRunClock(run func() time.Duration) Option { return func(c *config) { c.runClock = run } }

// withStoppingRunClock is withRunClock with a clock that stops while the
// machine sleeps, as Go's monotonic one does where the system has no clock
// that counts suspends: for tests of such systems.
func withStoppingRunClock(run func() time.Duration) Option {
	return func(c *config) { c.runClock, c.runStops = run, true }
}

// hostname returns the host's name, read once per process: a claim's
// name must stay the same for as long as the process may hold it, and
// every new Lock (guard makes one per acquisition) would otherwise ask the
// system again. A failed read is not kept.
func hostname() (string, error) {
	if h := hostCache.Load(); h != nil {
		return *h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	hostCache.Store(&h)
	return h, nil
}

var hostCache atomic.Pointer[string]

// processID is this process's pid, which Go cannot change under it (it
// forks only to exec), read once rather than by a system call per Lock.
var processID = os.Getpid()
