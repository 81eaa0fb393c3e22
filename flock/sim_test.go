package flock_test

// The deterministic simulation of issue 8: simulated processes on
// simulated hosts drive the real Lock (and guard) against the model
// network filesystem of internal/fsys/simfs, one filesystem call at a
// time, in an order, with crashes, pauses and faults, that a seed
// decides. Invariants are checked after every step; a failing schedule
// prints its seed and the end of its trace, and
//
//	go test ./flock/ -run '^TestSimulation$' -sim.schedules=1 -sim.seed=SEED
//
// replays it.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/guard"
	"github.com/nfsflock/nfsflock/internal/claim"
	"github.com/nfsflock/nfsflock/internal/fsys/simfs"
	"github.com/nfsflock/nfsflock/retry"
)

var (
	simSchedules = flag.Int("sim.schedules", 200, "number of simulation schedules to explore")
	simSeed      = flag.Uint64("sim.seed", 1, "seed of the first simulation schedule; schedule i uses seed+i")
	simLines     = flag.Int("sim.lines", 300, "trace lines a failing simulation schedule prints")
	simShow      = flag.Bool("sim.trace", false, "print the whole trace of every simulation schedule")
	simMutant    = flag.String("sim.mutant", "", "put back one known defect (see -sim.mutants) while exploring")
	simList      = flag.Bool("sim.mutants", false, "list the mutants that -sim.mutant accepts")
	simBudget    = flag.Int("sim.mutantbudget", 0, "schedules TestSimulationFindsMutants may spend on each mutant (0: skip it)")
)

// The columns of a simulation's counts.
const (
	colExclusion = iota // invariant 1: two holders within their leases, or a stale holder not told
	colTouch            // invariant 2: another holder's instance removed, moved or re-timed
	colFencing          // invariant 3: tokens not increasing
	colLeftovers        // invariant 4: files left behind
	colOutside          // invariant 5: a name that is not the lock's touched
	colLiveness         // the schedule did not end within its horizon
	colStale            // overlaps where one holder was past its lease: allowed, counted
	colStaleMove        // moves by a process paused past its own lease: allowed, counted
	numCols
)

var colNames = [numCols]string{"1", "2", "3", "4", "5", "liveness", "stale overlaps", "stale moves"}

// horizon bounds a schedule's virtual time: every wait in a script is
// bounded far below it.
const horizon = time.Hour

// maxSteps bounds a schedule's steps: a process that calls the
// filesystem over and over without time passing never reaches the
// horizon.
const maxSteps = 20000

func TestSimulation(t *testing.T) {
	if runtime.GOOS == "windows" {
		// Its world is POSIX hosts on a model NFS, named with the temporary
		// directory's path, and its invariants parse /-separated names;
		// Windows runs test the real primitives instead (.ci/wine).
		t.Skip("the simulation models POSIX hosts with /-separated paths; it runs on the Linux run")
	}
	if *simList {
		names := slices.Sorted(maps.Keys(flock.SimMutants()))
		for _, name := range names {
			m := flock.SimMutants()[name]
			note := ""
			if !m.Sim {
				note = " (not expected within the CI budget; see docs/RELIABILITY.md)"
			}
			fmt.Printf("%-20s %s%s\n", name, m.What, note)
		}
		return
	}
	if *simMutant != "" {
		if _, ok := flock.SimMutants()[*simMutant]; !ok {
			t.Fatalf("-sim.mutant=%q: no such mutant; -sim.mutants lists them", *simMutant)
		}
		defer flock.SimSetMutant(*simMutant)()
		fmt.Printf("simulation: mutant %s: %s\n", *simMutant, flock.SimMutants()[*simMutant].What)
	}
	n, first := *simSchedules, *simSeed
	if testing.Short() && n > 50 {
		n = 50
	}
	outcomes := explore(t, first, n)
	var total [numCols]int
	violations, failed := 0, 0
	for _, o := range outcomes {
		for c, k := range o.counts {
			total[c] += k
			if c < colStale {
				violations += k
			}
		}
		if o.failed() {
			failed++
			if failed <= 3 {
				t.Errorf("schedule %d failed: %s\n%s\nreplay: go test ./flock/ -run '^TestSimulation$' -sim.schedules=1 -sim.seed=%d",
					o.seed, o.verdict(), o.tail(*simLines), o.seed)
			}
		}
		if *simShow {
			fmt.Printf("--- schedule %d: %s\n%s\n", o.seed, o.verdict(), strings.Join(o.trace, "\n"))
		}
	}
	var cols []string
	for c := range numCols {
		cols = append(cols, fmt.Sprintf("%s: %d", colNames[c], total[c]))
	}
	fmt.Printf("simulation: %d schedules, %d violations (%s)\n", n, violations, strings.Join(cols, ", "))
	if failed > 3 {
		var more []string
		for _, o := range outcomes {
			if o.failed() && len(more) < failed-3+3 {
				more = append(more, o.verdict())
			}
		}
		t.Errorf("%d more schedules failed; all of them:\n%s", failed-3, strings.Join(more, "\n"))
	}
}

// regressionSeeds are schedules that once failed, outside the range CI
// explores (seeds 1 to 20000), each with what it found.
var regressionSeeds = map[uint64]string{
	15001001: "a breakers' lock far ahead, written by a breaker whose clock ran fast, broken at once under it",
	18012759: "the oracle held a holder that put its own claim back after a forced break to ErrLockLost",
	30017077: "the oracle allowed an empty breakers' lock no lag of the sweep's lower bound",
	50014552: "a sweep left a dead breaker's lock in place, judging it by times a per-path cache kept old",
}

// TestSimulationRegressions replays the schedules that once failed.
func TestSimulationRegressions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the simulation models POSIX hosts with /-separated paths; it runs on the Linux run")
	}
	for _, seed := range slices.Sorted(maps.Keys(regressionSeeds)) {
		if o := runOne(t, seed); o.failed() {
			t.Errorf("seed %d (%s) fails again: %s\n%s\nreplay: go test ./flock/ -run '^TestSimulation$' -sim.schedules=1 -sim.seed=%d",
				seed, regressionSeeds[seed], o.verdict(), o.tail(*simLines), seed)
		}
	}
}

// TestSimulationFindsMutants shows that the explorer finds each defect
// that a mutant puts back, within its budget of schedules: without that,
// "0 violations" would say little. It reports, per mutant, how many
// schedules it took to find the first violation.
func TestSimulationFindsMutants(t *testing.T) {
	if *simBudget <= 0 {
		t.Skip("explores thousands of schedules per mutant: run with -sim.mutantbudget=N (.ci/test does)")
	}
	const batch = 50
	for _, name := range slices.Sorted(maps.Keys(flock.SimMutants())) {
		t.Run(name, func(t *testing.T) {
			if !flock.SimMutants()[name].Sim {
				t.Skip("not expected within the CI budget: its regression tests stage it (docs/RELIABILITY.md)")
			}
			defer flock.SimSetMutant(name)()
			for tried := 0; tried < *simBudget; tried += batch {
				for _, o := range explore(t, *simSeed+uint64(tried), batch) {
					if o.failed() {
						fmt.Printf("simulation: mutant %s found after %d schedules (seed %d: %s)\n",
							name, o.seed-*simSeed+1, o.seed, o.verdict())
						return
					}
				}
			}
			t.Errorf("mutant %s (%s): no violation in %d schedules from seed %d", name, flock.SimMutants()[name].What, *simBudget, *simSeed)
		})
	}
}

// TestSimulationReplays runs schedules twice and compares their traces:
// a seed must say everything about a run. Within one virtual instant, the
// order in which one process's goroutines (guard's function and its
// keeper, which may refresh at once) report may follow the Go scheduler,
// so lines of one instant are compared as a set; every call, its result
// and its instant must match.
func TestSimulationReplays(t *testing.T) {
	for seed := uint64(1000); seed < 1020; seed++ {
		a := runOne(t, seed)
		b := runOne(t, seed)
		a.trace, b.trace = byInstant(a.trace), byInstant(b.trace)
		if x, y := strings.Join(a.trace, "\n"), strings.Join(b.trace, "\n"); x != y {
			i := 0
			for i < len(a.trace) && i < len(b.trace) && a.trace[i] == b.trace[i] {
				i++
			}
			line := func(tr []string) string {
				if i < len(tr) {
					return tr[i]
				}
				return "(end)"
			}
			t.Fatalf("seed %d: two runs differ at trace line %d:\n%s\n%s", seed, i+1, line(a.trace), line(b.trace))
		}
	}
}

// byInstant returns trace with the lines of each virtual instant (their
// first field) sorted.
func byInstant(trace []string) []string {
	out := slices.Clone(trace)
	instant := func(line string) string {
		f := strings.Fields(line)
		if len(f) == 0 {
			return ""
		}
		return f[0]
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && instant(out[j]) == instant(out[i]) {
			j++
		}
		slices.Sort(out[i:j])
		i = j
	}
	return out
}

// explore runs n schedules from seed first on all CPUs, each in a bubble
// of its own, and returns their outcomes in seed order.
func explore(t *testing.T, first uint64, n int) []*outcome {
	outcomes := make([]*outcome, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range jobs {
				outcomes[i] = runOne(t, first+uint64(i))
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return outcomes
}

// runOne runs the schedule of seed in a testing/synctest bubble.
func runOne(t *testing.T, seed uint64) *outcome {
	var o *outcome
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(newScenario(seed))
		w.run()
		o = w.outcome()
	})
	return o
}

// outcome is what a schedule found.
type outcome struct {
	seed    uint64
	summary string
	counts  [numCols]int
	trace   []string
}

func (o *outcome) failed() bool {
	for c := range colStale {
		if o.counts[c] > 0 {
			return true
		}
	}
	return false
}

func (o *outcome) verdict() string {
	var broke []string
	for c := range numCols {
		if o.counts[c] > 0 {
			broke = append(broke, fmt.Sprintf("%s: %d", colNames[c], o.counts[c]))
		}
	}
	if len(broke) == 0 {
		broke = []string{"no violations"}
	}
	return o.summary + "; " + strings.Join(broke, ", ")
}

func (o *outcome) tail(n int) string {
	tr := o.trace
	if len(tr) > n {
		tr = append([]string{fmt.Sprintf("... %d earlier lines", len(tr)-n)}, tr[len(tr)-n:]...)
	}
	return strings.Join(tr, "\n")
}

// scenario is what a seed decides before the run: hosts and their
// mounts, processes and their scripts, fault rates.
type scenario struct {
	seed            uint64
	lifetime, slop  time.Duration
	fencing         bool
	deadOwnerBreak  bool
	hosts           []hostSpec
	procs           []procSpec
	crashRate       float64 // per step
	pauseRate       float64 // per step
	plant           string  // what the lock path holds at the start: "", "stale", "hostile"
	plantBreakers   bool    // with plant "stale": a dead breaker's breakers' lock beside it
	schedulerSeed   uint64
	filesystemSeed  uint64
	pauseLongChance float64
	skewed          bool // hosts' clocks skewed beyond the clock slop
}

type hostSpec struct {
	name   string
	cfg    simfs.HostConfig
	spaces int // pid namespaces sharing the hostname (containers)
}

type procSpec struct {
	host, ns int
	policy   retry.Policy
	rounds   []round
	portable bool // WithPortable
}

// round is one use of the lock in a process's script.
type round struct {
	kind    string        // "acquire", "try", "guard", "break", "force"
	timeout time.Duration // Acquire's and guard's
	body    []step        // while held
	close   bool          // end with Close rather than Release
}

type step struct {
	kind string // "sleep", "refresh", "islocked", "keepalive"
	d    time.Duration
	life time.Duration // refresh's new lifetime; 0 keeps the lifetime
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func newScenario(seed uint64) *scenario {
	r := rand.New(rand.NewPCG(seed, 0x51a7e))
	sc := &scenario{seed: seed, schedulerSeed: r.Uint64(), filesystemSeed: r.Uint64()}
	sc.lifetime = pick(r, 2*time.Second, 5*time.Second, 15*time.Second)
	sc.slop = pick(r, time.Second, 3*time.Second, 10*time.Second)
	sc.fencing = r.IntN(2) == 0
	sc.deadOwnerBreak = r.IntN(3) == 0
	sc.crashRate = pick(r, 0, 0.003, 0.02)
	sc.pauseRate = pick(r, 0, 0.01, 0.04)
	sc.pauseLongChance = pick(r, 0.2, 0.5)
	sc.plant = pick(r, "", "", "stale", "hostile")
	nh := 1 + r.IntN(3)
	for i := range nh {
		var cfg simfs.HostConfig
		switch k := r.IntN(10); {
		case nh == 1 && k < 3:
			cfg = simfs.Local()
		case k < 6:
			cfg = simfs.NFS()
		default:
			cfg = simfs.SSHFS()
			if r.IntN(25) < 5 {
				// Without hard links there is no fresh path to read
				// the lock file through: as doc.go asks, the clock
				// slop covers the attribute cache.
				cfg.NoHardLinks = true
				cfg.AttrMax = max(cfg.AttrMin, min(cfg.AttrMax, sc.slop))
				cfg.DirMax = min(cfg.DirMax, cfg.AttrMax)
			}
		}
		// Pairwise skew stays within half the clock slop.
		cfg.Skew = time.Duration(r.Int64N(int64(sc.slop/2)+1)) - sc.slop/4
		cfg.LostReplies = pick(r, 0, 0, 0.05, 0.2)
		cfg.ReusePIDs = r.IntN(2) == 0
		spaces := 1
		if r.IntN(4) == 0 {
			spaces = 2
		}
		sc.hosts = append(sc.hosts, hostSpec{name: fmt.Sprintf("h%d", i), cfg: cfg, spaces: spaces})
	}
	if sc.fencing && slices.ContainsFunc(sc.hosts, func(h hostSpec) bool { return h.cfg.NoHardLinks }) {
		// Fencing's counter moves need links or renames that do not
		// replace: there every acquisition fails (doc.go, Primitives).
		sc.fencing = false
	}
	np := 2 + r.IntN(3)
	for range np {
		h := r.IntN(nh)
		p := procSpec{
			host: h,
			ns:   r.IntN(sc.hosts[h].spaces),
			policy: retry.Policy{
				Initial:    pick(r, 10*time.Millisecond, 100*time.Millisecond),
				Max:        pick(r, 500*time.Millisecond, 2*time.Second),
				Multiplier: 2,
			},
		}
		for range 1 + r.IntN(3) {
			p.rounds = append(p.rounds, newRound(r, sc))
		}
		sc.procs = append(sc.procs, p)
	}
	// Drawn last, so that the draws above keep their meaning for every
	// seed. A quarter of the schedules skew the hosts' clocks beyond the
	// clock slop, by up to a minute and more either way: the time base
	// must make that harmless. In others the hosts' mounts stamp files
	// with the hosts' clocks rather than the server's (change times that
	// are not the server's), so that the processes judge by their own
	// clocks, as before the time base, and the slop must cover the skew:
	// every host's in a quarter, one host's in an eighth.
	switch k := r.IntN(8); {
	case k < 2:
		sc.skewed = true
		for i := range sc.hosts {
			d := sc.slop + time.Duration(r.Int64N(int64(time.Minute)))
			if r.IntN(2) == 0 {
				d = -d
			}
			sc.hosts[i].cfg.Skew = d
		}
	case k < 4:
		for i := range sc.hosts {
			sc.hosts[i].cfg.ClientStamps = true
		}
	case k < 5:
		sc.hosts[r.IntN(len(sc.hosts))].cfg.ClientStamps = true
	}
	// Draws added later come from a stream of their own, so that the
	// draws above keep their meaning for every seed.
	later := rand.New(rand.NewPCG(seed, 0x9047ab1e))
	for i := range sc.procs {
		sc.procs[i].portable = later.IntN(4) == 0
		if h := &sc.hosts[sc.procs[i].host]; sc.procs[i].portable && h.cfg.Cache == simfs.CacheSSHFS {
			// Created lock files on sshfs: the slop covers the
			// attribute cache, as doc.go asks.
			h.cfg.AttrMax = max(h.cfg.AttrMin, min(h.cfg.AttrMax, sc.slop))
			h.cfg.DirMax = min(h.cfg.DirMax, h.cfg.AttrMax)
		}
	}
	if sc.skewed && later.IntN(4) == 0 {
		// Hosts that agree with one another but not with the server,
		// one of whose mounts stamps with its client's clock: its Locks
		// judge in that clock, the others must not judge in the
		// server's alone (the time base's review, seed 3000077).
		for i := range sc.hosts {
			sc.hosts[i].cfg.Skew = sc.hosts[0].cfg.Skew
		}
		sc.hosts[later.IntN(len(sc.hosts))].cfg.ClientStamps = true
	}
	// A stream of its own again: in a third of the schedules that plant
	// a stale lock file, a breaker that died at work left its breakers'
	// lock beside it, which whoever then breaks must remove while others
	// that judged it may be doing the same.
	sc.plantBreakers = sc.plant == "stale" && rand.New(rand.NewPCG(seed, 0xb7ea6e75)).IntN(3) == 0
	if len(sc.hosts) > 1 && later.IntN(3) == 0 {
		// The server's own host, on whose local disk the directory
		// lies, beside the clients: its Locks look by one Lstat
		// (fsys.Direct). Its clock, stamps and replies stay as drawn.
		h := &sc.hosts[later.IntN(len(sc.hosts))]
		local := simfs.Local()
		local.Skew, local.LostReplies, local.ReusePIDs, local.ClientStamps = h.cfg.Skew, h.cfg.LostReplies, h.cfg.ReusePIDs, h.cfg.ClientStamps
		h.cfg = local
	}
	// A stream of its own again: sshfs mounts that sometimes show the
	// attributes from before a time change right after it (a listing's
	// cache), and refreshes to a shorter or longer lifetime.
	times := rand.New(rand.NewPCG(seed, 0x5a1e7173))
	for i := range sc.hosts {
		if sc.hosts[i].cfg.Cache == simfs.CacheSSHFS {
			sc.hosts[i].cfg.StaleAfterSet = pick(times, 0, 0.1, 0.5)
		}
	}
	for i := range sc.procs {
		for j := range sc.procs[i].rounds {
			for k, st := range sc.procs[i].rounds[j].body {
				if st.kind == "refresh" && times.IntN(3) == 0 {
					sc.procs[i].rounds[j].body[k].life = pick(times, sc.lifetime/2, 2*sc.lifetime)
				}
			}
		}
	}
	return sc
}

func newRound(r *rand.Rand, sc *scenario) round {
	patience := sc.lifetime + sc.slop
	rd := round{timeout: pick(r, time.Second, patience+3*time.Second, 2*patience)}
	switch k := r.IntN(20); {
	case k < 10:
		rd.kind = "acquire"
	case k < 14:
		rd.kind = "try"
	case k < 18:
		rd.kind = "guard"
	case k < 19:
		rd.kind = "break"
	default:
		rd.kind = "force"
	}
	hold := func() time.Duration {
		if r.IntN(6) == 0 {
			// Past the lifetime and the slop: others may break it.
			return patience + time.Duration(r.Int64N(int64(patience)))
		}
		return time.Duration(r.Int64N(int64(sc.lifetime)))
	}
	if rd.kind == "guard" {
		rd.body = []step{{kind: "sleep", d: hold()}}
		return rd
	}
	for range r.IntN(4) {
		st := step{kind: pick(r, "sleep", "sleep", "refresh", "islocked", "keepalive")}
		if st.kind == "sleep" || st.kind == "keepalive" {
			st.d = hold()
		}
		rd.body = append(rd.body, st)
	}
	rd.close = r.IntN(4) == 0
	return rd
}

func (sc *scenario) String() string {
	var hs []string
	for _, h := range sc.hosts {
		s := fmt.Sprintf("%s=%v skew %v", h.name, h.cfg.Cache, h.cfg.Skew)
		if h.cfg.LostReplies > 0 {
			s += fmt.Sprintf(" lost %.2f", h.cfg.LostReplies)
		}
		if h.cfg.NoHardLinks {
			s += " no-links"
		}
		if h.cfg.ClientStamps {
			s += " client-stamps"
		}
		if h.cfg.StaleAfterSet > 0 {
			s += fmt.Sprintf(" stale-after-set %.1f", h.cfg.StaleAfterSet)
		}
		if h.spaces > 1 {
			s += fmt.Sprintf(" %d pid namespaces", h.spaces)
		}
		hs = append(hs, s)
	}
	opts := ""
	if sc.fencing {
		opts += " fencing"
	}
	if sc.deadOwnerBreak {
		opts += " dead-owner-break"
	}
	if sc.skewed {
		opts += " skewed-beyond-slop"
	}
	plant := sc.plant
	if plant == "" {
		plant = "none"
	}
	if sc.plantBreakers {
		plant += " with a dead breaker's lock"
	}
	portable := 0
	for _, p := range sc.procs {
		if p.portable {
			portable++
		}
	}
	if portable > 0 {
		opts += fmt.Sprintf(" portable(%d)", portable)
	}
	return fmt.Sprintf("seed %d: %d procs, lifetime %v, slop %v,%s crash %.3f pause %.2f, plant %s; hosts: %s",
		sc.seed, len(sc.procs), sc.lifetime, sc.slop, opts, sc.crashRate, sc.pauseRate, plant, strings.Join(hs, "; "))
}

// world is one run: the model filesystem, the processes, the scheduler's
// state and what the invariants need to know.
type world struct {
	sc       *scenario
	rng      *rand.Rand // the scheduler's choices
	srv      *simfs.Server
	hosts    []*simfs.Host
	dir      string
	base     string
	lockPath string
	start    time.Time
	decoys   map[string]simfs.Node
	planted  map[string]simfs.Node // what a plant put beside the lock file

	kick chan struct{} // a process parked, or finished

	mu        sync.Mutex // guards what follows, and every proc's scheduler-side state
	procs     []*proc
	trace     []string
	counts    [numCols]int
	acqs      int    // acquisitions granted so far
	lastToken uint64 // largest fencing token granted
	tokens    map[uint64]bool
	reported  map[string]bool
	over      bool // the horizon was reached
	steps     int
}

func newWorld(sc *scenario) *world {
	w := &world{
		sc:       sc,
		rng:      rand.New(rand.NewPCG(sc.schedulerSeed, 1)),
		dir:      filepath.Clean(os.TempDir()),
		base:     fmt.Sprintf("sim%016x.lck", sc.seed),
		start:    time.Now(),
		kick:     make(chan struct{}, 1),
		reported: map[string]bool{},
		tokens:   map[uint64]bool{},
		decoys:   map[string]simfs.Node{},
		planted:  map[string]simfs.Node{},
	}
	w.lockPath = filepath.Join(w.dir, w.base)
	w.srv = simfs.NewServer(rand.New(rand.NewPCG(sc.filesystemSeed, 2)), time.Now)
	for _, h := range sc.hosts {
		w.hosts = append(w.hosts, w.srv.NewHost(h.cfg))
	}
	must(w.srv.MkdirAll(w.dir))
	must(w.srv.MkdirAll("/elsewhere"))
	// Names that are not the lock's: nothing may touch them (invariant 5).
	for _, d := range []struct{ path, data string }{
		{filepath.Join(w.dir, "other.txt"), "keep"},
		{w.lockPath + ".bak", "keep"},
		{filepath.Join(w.dir, "other.lck|h0|99|1"), filepath.Join(w.dir, "other.lck|h0|99|1")},
		{"/elsewhere/secret", "keep"},
	} {
		must(w.srv.WriteFile(d.path, []byte(d.data), w.start.Add(-time.Hour), 0))
		w.decoys[d.path], _ = w.srv.Lookup(d.path)
	}
	switch sc.plant {
	case "stale":
		// Left by pid 99 of h0, which no longer runs; expired or not yet.
		tag := w.hosts[0].Namespace(0).Tag()
		c := claim.Name(w.lockPath, "|", "h0", 99, 7, tag)
		expiry := w.start.Add(time.Duration(w.rng.Int64N(int64(2*sc.lifetime))) - sc.lifetime)
		must(w.srv.WriteFile(c, []byte(c), expiry, 1000))
		must(w.srv.Link(c, w.lockPath)) // as a holder leaves it
		if sc.plantBreakers {
			// Left by pid 98 of h0, killed while it broke: expired by up
			// to ten seconds, so broken once the slop has passed.
			b := claim.Name(w.lockPath, "|", "h0", 98, 8, tag)
			must(w.srv.WriteFile(b, []byte(b), w.start.Add(-time.Duration(w.rng.Int64N(int64(10*time.Second)))), 1000))
			must(w.srv.Link(b, w.lockPath+".break"))
			for _, p := range []string{b, w.lockPath + ".break"} {
				w.planted[p], _ = w.srv.Lookup(p)
			}
		}
	case "hostile":
		must(w.srv.WriteFile(w.lockPath, []byte(pick(w.rng, "/elsewhere/secret", filepath.Join(w.dir, "other.txt"), "../other.txt")), w.start.Add(-time.Hour), 0))
	}
	return w
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// proc is one simulated process. Its script runs in its own goroutine;
// the fields below the line are the scheduler's, guarded by world.mu.
type proc struct {
	w     *world
	id    int
	label string
	spec  procSpec
	host  int
	fs    *simfs.Proc
	final bool // the last process of a host, which checks invariant 4
	rnd   *rand.Rand

	pending      []*pendingCall
	pausedUntil  time.Time
	crashed      bool
	done         bool
	events       []event
	hold         *holding // what the process believes it holds
	mustLose     bool     // was past its lease while another held the lock
	checkLost    bool     // mustLose was set when the call now running began
	forcing      bool     // inside Break(true)
	releasing    bool     // inside Release or Close, or guard's release
	lastWrite    time.Time
	lastWriteID  uint64
	forcedID     uint64      // a claim of its own that a forced break touched before it held the lock
	breakLease   time.Time   // expiry of the breakers' lock it last linked, by its clock
	breakLeaseID uint64      // that breakers' lock's inode, while it stands
	acquiredOnce bool        // it has held the lock at least once
	lock         *flock.Lock // the Lock of its round now, guard's included
}

type pendingCall struct {
	c     *simfs.Call
	apply func()
	wake  chan bool // true: the call happened; false: the process crashed
}

// holding is one acquisition, as its process believes in it.
type holding struct {
	seq        int
	instance   uint64    // the inode of the claim it linked
	lease      time.Time // the expiry it last wrote, by its host's clock
	kctx       context.Context
	forced     bool  // broken by Break(true), or moved by a process past its leases: exclusion no longer promised
	forcedMust bool  // forced set mustLose, which a put-back undoes
	movedBy    *proc // the process past its leases that moved it, whose put-back undoes forced
	// retimedBy is the process past its leases that re-timed the instance
	// by path (doc.go: a created lock file on sshfs), with an expiry
	// others may then judge it broken by.
	retimedBy *proc
}

type event struct {
	kind  string // "begin", "acquired", "keepalive", "release", "result", "force"
	op    string
	note  string // what the call returned besides err
	err   error
	token uint64
	ok    bool
	ctx   context.Context
}

func (w *world) newProc(spec procSpec, final bool) *proc {
	h := w.hosts[spec.host]
	p := &proc{w: w, id: len(w.procs) + 1, spec: spec, host: spec.host, final: final}
	if final {
		// A pid of its own: with a dead process's pid, it could not tell
		// that process's claims from its own.
		p.fs = h.Namespace(spec.ns).SpawnUnused(p.step)
	} else {
		p.fs = h.Namespace(spec.ns).Spawn(p.step)
	}
	// A new simulated process may be given the address of an earlier
	// run's, and with it what that one's Locks learned of their directory.
	flock.SimForgetFS(p.fs)
	p.rnd = rand.New(rand.NewPCG(w.sc.seed, uint64(p.id)))
	ns := ""
	if spec.ns > 0 {
		ns = fmt.Sprintf("/ns%d", spec.ns)
	}
	p.label = fmt.Sprintf("P%d %s%s:%d", p.id, w.sc.hosts[spec.host].name, ns, p.fs.PID())
	w.procs = append(w.procs, p)
	return p
}

// step parks the calling goroutine of p until the scheduler lets its call
// happen (or crashes p).
func (p *proc) step(c *simfs.Call, apply func()) {
	w := p.w
	w.mu.Lock()
	if p.crashed {
		w.mu.Unlock()
		return
	}
	pc := &pendingCall{c: c, apply: apply, wake: make(chan bool)}
	p.pending = append(p.pending, pc)
	w.mu.Unlock()
	w.poke()
	<-pc.wake
}

func (w *world) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (p *proc) event(e event) {
	p.w.mu.Lock()
	p.events = append(p.events, e)
	p.w.mu.Unlock()
}

func (p *proc) isCrashed() bool {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	return p.crashed
}

// run drives the processes of the scenario to their end, then one last
// process per host and pid namespace, and checks what is left.
func (w *world) run() {
	w.log(nil, w.sc.String())
	var first []*proc
	for _, spec := range w.sc.procs {
		first = append(first, w.newProc(spec, false))
	}
	w.drive(first)
	// One last process per host and pid namespace takes the lock, which
	// sweeps what that host's dead processes left. One that cannot (a
	// fencing counter whose starter crashed on another host stays
	// unusable until a process there proves the starter dead) gets
	// another turn after the others, up to three rounds.
	pending := make(map[[2]int]bool)
	for h, hs := range w.sc.hosts {
		for ns := range hs.spaces {
			pending[[2]int{h, ns}] = true
		}
	}
	for range 3 {
		for h, hs := range w.sc.hosts {
			for ns := range hs.spaces {
				if !pending[[2]int{h, ns}] {
					continue
				}
				spec := procSpec{host: h, ns: ns, policy: retry.Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2},
					rounds: []round{{kind: "acquire", timeout: 10 * time.Minute, close: true}}}
				w.mu.Lock()
				p := w.newProc(spec, true)
				w.mu.Unlock()
				w.drive([]*proc{p})
				if p.acquiredOnce {
					delete(pending, [2]int{h, ns})
				}
			}
		}
	}
	w.checkLeftovers()
}

// drive starts procs and schedules them until all have finished.
func (w *world) drive(procs []*proc) {
	for _, p := range procs {
		go p.main()
	}
	for {
		synctest.Wait()
		w.mu.Lock()
		w.drainEvents()
		w.checkHolders()
		if !slices.ContainsFunc(procs, func(p *proc) bool { return !p.done }) {
			w.mu.Unlock()
			return
		}
		now := time.Now()
		w.steps++
		if (now.Sub(w.start) > horizon || w.steps > maxSteps) && !w.over {
			w.over = true
			w.violate(colLiveness, nil, "the schedule ran past its horizon of %v or %d steps; crashing what is left", horizon, maxSteps)
			for _, p := range procs {
				w.crash(p)
			}
		}
		runnable, wake := w.runnable(now)
		if len(runnable) == 0 {
			w.mu.Unlock()
			w.idle(wake)
			continue
		}
		pc := runnable[w.rng.IntN(len(runnable))]
		p := w.owner(pc)
		r := w.rng.Float64()
		switch {
		case !p.final && r < w.sc.crashRate:
			w.crash(p)
		case !p.final && r < w.sc.crashRate+w.sc.pauseRate:
			d := time.Duration(w.rng.Int64N(int64(2 * time.Second)))
			if w.rng.Float64() < w.sc.pauseLongChance {
				d = w.sc.lifetime + time.Duration(w.rng.Int64N(int64(w.sc.lifetime+2*w.sc.slop)))
			}
			p.pausedUntil = now.Add(d)
			w.log(p, fmt.Sprintf("PAUSE for %v, before %s", d, pc.c.Op))
		default:
			p.pending = slices.DeleteFunc(p.pending, func(x *pendingCall) bool { return x == pc })
			pc.apply()
			w.afterCall(p, pc.c)
			w.mu.Unlock()
			pc.wake <- true
			continue
		}
		w.mu.Unlock()
	}
}

// runnable returns the parked calls that may happen now, in a fixed
// order, and the earliest time a paused one may.
func (w *world) runnable(now time.Time) ([]*pendingCall, time.Time) {
	var run []*pendingCall
	var wake time.Time
	for _, p := range w.procs {
		if p.crashed || len(p.pending) == 0 {
			continue
		}
		if now.Before(p.pausedUntil) {
			if wake.IsZero() || p.pausedUntil.Before(wake) {
				wake = p.pausedUntil
			}
			continue
		}
		calls := slices.Clone(p.pending)
		slices.SortStableFunc(calls, func(a, b *pendingCall) int { return strings.Compare(a.c.String(), b.c.String()) })
		run = append(run, calls...)
	}
	return run, wake
}

func (w *world) owner(pc *pendingCall) *proc {
	for _, p := range w.procs {
		if slices.Contains(p.pending, pc) {
			return p
		}
	}
	panic("simulation: a pending call without a process")
}

// idle waits, durably, until a process parks or finishes, or a pause
// ends, or the horizon passes.
func (w *world) idle(wake time.Time) {
	end := w.start.Add(horizon + time.Second)
	if wake.IsZero() || wake.After(end) {
		wake = end
	}
	if !wake.After(time.Now()) {
		// Past the horizon, processes still asleep (in a retry's
		// backoff) must get to their next call: a timer that fires at
		// once would keep the bubble's clock from moving.
		wake = time.Now().Add(time.Second)
	}
	t := time.NewTimer(time.Until(wake))
	defer t.Stop()
	select {
	case <-w.kick:
	case <-t.C:
	}
}

// crash stops p for good: its calls never happen, its pid is dead, its
// files stay. Called with w.mu held.
func (w *world) crash(p *proc) {
	if p.crashed || p.done {
		return
	}
	p.crashed = true
	p.hold = nil
	p.fs.Exit()
	w.log(p, "CRASH")
	for _, pc := range p.pending {
		close(pc.wake)
	}
	p.pending = nil
}

func (w *world) log(p *proc, text string) {
	who := "-"
	if p != nil {
		who = p.label
	}
	elapsed := time.Since(w.start)
	w.trace = append(w.trace, fmt.Sprintf("%10.6f %-14s %s", elapsed.Seconds(), who, text))
}

func (w *world) violate(col int, p *proc, format string, args ...any) {
	w.counts[col]++
	w.log(p, fmt.Sprintf("VIOLATION of invariant %s: %s", colNames[col], fmt.Sprintf(format, args...)))
}

// short writes paths of the run the way the trace shows them: the lock
// path as L, the lock's directory left out.
func (w *world) short(p string) string {
	p = strings.ReplaceAll(p, w.lockPath, "L")
	return strings.TrimPrefix(p, w.dir+"/")
}

// leaseNow is the clock in which p writes its expiries and judges its
// leases: the filesystem's (the server's, the true time), or, where the
// time base is off or the host's mount stamps files with the host's own
// clock, the host's.
func (w *world) leaseNow(p *proc) time.Time {
	h := w.hosts[p.host]
	if *simMutant == "no-time-base" || flock.SimMutantOn("no-time-base") || h.Config().ClientStamps {
		return h.Now()
	}
	// The time base's latest filesystem time includes the host's own
	// clock: a holder's lease ends by whichever of the two is later.
	now, fs := h.Now(), h.Now().Add(-h.Config().Skew)
	if now.After(fs) {
		return now
	}
	return fs
}

func (w *world) within(p *proc) bool {
	return p.hold != nil && w.leaseNow(p).Before(p.hold.lease)
}

// afterCall checks a call that just happened (invariants 2 and 5) and
// follows what it wrote. Called with w.mu held.
func (w *world) afterCall(p *proc, c *simfs.Call) {
	w.log(p, c.Format(w.short))
	for _, name := range []string{c.Path, c.Path2} {
		if name != "" && !w.allowed(name) {
			w.violate(colOutside, p, "%s touched %s, which is not one of the lock's names", c.Op, name)
		}
	}
	for _, e := range c.Effects {
		if (e.Kind == simfs.Created || e.Kind == simfs.Retimed) && w.claimOf(p, e.ID) {
			p.lastWriteID = e.ID
			// A claim written without explicit times, to learn the
			// server's clock, bears no expiry yet. Otherwise the expiry
			// is taken as stored (cut to the second on sshfs), which is
			// what the holder itself counts on.
			if !c.Time.IsZero() {
				p.lastWrite = e.Time
			}
			// An expiry written on an instance that is no longer the lock
			// file (an orphan, after a break) extends no lease.
			if n, ok := w.srv.Lookup(w.lockPath); ok && !c.Time.IsZero() && p.hold != nil && p.hold.instance == e.ID && n.ID == e.ID {
				p.hold.lease = e.Time
			}
		}
		if bn, ok := w.srv.Lookup(w.lockPath + ".break"); ok && bn.ID == e.ID &&
			(e.Kind == simfs.Linked || e.Kind == simfs.Created || e.Kind == simfs.Retimed) && w.claimOf(p, e.ID) {
			// Linked, or (without hard links) created and then written.
			if n, ok := w.srv.Inode(e.ID); ok {
				p.breakLease, p.breakLeaseID = n.ModTime, e.ID
			}
		}
		if e.Kind == simfs.Moved && e.Path == w.lockPath+".break" && e.ID == p.breakLeaseID {
			// Given up (or broken): no lease any more.
			p.breakLease, p.breakLeaseID = time.Time{}, 0
		}
		w.checkTouch(p, e)
	}
}

// stale reports whether p acts past every lease it had: a process paused
// longer than the clock slop between its last look at the clock and its
// next call. No lock file can stop such a move; the protocol's check of
// what it moved puts the lock back, and invariant 1 still holds it to
// account if two processes end up holding the lock.
func (w *world) stale(p *proc) bool {
	return !w.within(p) && (p.breakLease.IsZero() || !w.leaseNow(p).Before(p.breakLease) || w.ownLeaseOver(p, p.breakLease))
}

// ownLeaseOver reports whether the Lock p uses now judges a lease of its
// own that ends at expiry over, by its own bounds on the filesystem's
// clock. A Lock whose sample spanned a pause carries a wide upper bound,
// writes its expiries by it, and counts its lease over by it: well before
// the expiry as written passes by its host's clock (seed 12018719).
func (w *world) ownLeaseOver(p *proc, expiry time.Time) bool {
	return p.lock != nil && flock.SimLeaseOver(p.lock, expiry)
}

// allowed reports whether a process of the lock may touch name: the
// lock's directory, the lock file, its claims (and names shaped like them:
// probes, locks moved aside) and side files (the fencing counter, its hint
// and temporary files, the breakers' lock).
func (w *world) allowed(name string) bool {
	if name == w.dir {
		return true
	}
	if filepath.Dir(name) != w.dir {
		return false
	}
	b := filepath.Base(name)
	return b == w.base || strings.HasPrefix(b, w.base+"|") || strings.HasPrefix(b, w.base+"^") ||
		b == w.base+".fence" || strings.HasPrefix(b, w.base+".fence.") || b == w.base+".break"
}

// claimOf reports whether inode id holds a claim of p's.
func (w *world) claimOf(p *proc, id uint64) bool {
	n, ok := w.srv.Inode(id)
	if !ok {
		return false
	}
	d, ok := claim.Parse(n.Data, "|")
	if !ok || d.LockFile != w.lockPath || d.Hostname != w.sc.hosts[p.host].name || d.PID != p.fs.PID() {
		return false
	}
	tag, _ := claim.TagOf(strings.TrimSpace(string(n.Data)), "|")
	return tag == p.fs.Namespace()
}

// checkTouch checks invariant 2 for one change p made.
func (w *world) checkTouch(p *proc, e simfs.Effect) {
	for _, h := range w.procs {
		restored := e.Kind == simfs.Moved && e.Path2 == w.lockPath || e.Kind == simfs.Linked && e.Path == w.lockPath
		if h == p && h.hold == nil && restored && e.ID == h.forcedID && e.ID != 0 {
			// Its own claim, put at the lock path again by itself after
			// a forced break took it away (the lock path was free): a
			// new instance, its own (seed 18012759).
			h.forcedID = 0
		}
		if p.forcing && h != p && h.hold == nil && e.ID == h.lastWriteID && e.ID != 0 {
			switch {
			case restored && h.forcedID == e.ID:
				// A forced break puts back an instance other than the
				// one it judged: not broken after all.
				h.forcedID = 0
			case e.Path == w.lockPath && e.Kind != simfs.Linked || e.Kind == simfs.Retimed:
				// Broken by force while h is still acquiring it.
				h.forcedID = e.ID
			}
		}
		if (p.forcing || h.hold != nil && h.hold.movedBy == p) && h != p && h.hold != nil && h.hold.forced && restored && e.ID == h.hold.instance {
			h.hold.forced, h.hold.movedBy = false, nil
			if h.hold.forcedMust {
				h.mustLose, h.hold.forcedMust = false, false
			}
			w.log(h, fmt.Sprintf("its lock was put back by %s", p.label))
		}
		if h == p || h.hold == nil || h.hold.forced || e.ID != h.hold.instance {
			continue
		}
		what := ""
		switch e.Kind {
		case simfs.Unlinked, simfs.Replaced:
			if e.Path == w.lockPath {
				what = "removed"
			}
		case simfs.Moved:
			if e.Path == w.lockPath {
				what = "moved"
			}
		case simfs.Retimed:
			what = "re-timed"
		}
		switch {
		case what == "":
		case p.forcing:
			h.hold.forcedMust = h.hold.forcedMust || !h.mustLose
			h.hold.forced, h.mustLose = true, true
			w.log(h, fmt.Sprintf("its lock was %s by a forced break of %s", what, p.label))
		case !w.within(h):
			w.log(h, fmt.Sprintf("its lock, past its lease, was %s by %s", what, p.label))
		case w.stale(p) && e.Kind == simfs.Retimed:
			// The same window where times are set by path (a created
			// lock file on sshfs, doc.go): paused between its look at L
			// and the change, a process re-times what replaced its file.
			// The instance stays the lock file, its holder's: only a
			// break that the new expiry allows takes it (below).
			w.counts[colStaleMove]++
			h.hold.retimedBy = p
			w.log(p, fmt.Sprintf("past its own leases, %s %s's lock instance #%d", what, h.label, e.ID))
		case w.stale(p) && (p.releasing || !p.breakLease.IsZero()):
			// The documented window: a releaser or breaker paused, past
			// the lease it judged by, between its last look at the clock
			// and this call. While the instance is moved, a third process
			// may take the lock; its holder must learn ErrLockLost at its
			// next call, unless it is put back.
			w.counts[colStaleMove]++
			h.hold.forcedMust = h.hold.forcedMust || !h.mustLose
			h.hold.forced, h.mustLose, h.hold.movedBy = true, true, p
			w.log(p, fmt.Sprintf("past its own leases, %s %s's lock instance #%d", what, h.label, e.ID))
		case w.stale(p):
			w.counts[colStaleMove]++
			w.log(p, fmt.Sprintf("past its own leases, %s %s's lock instance #%d", what, h.label, e.ID))
		case h.hold.retimedBy != nil && what != "re-timed":
			// What the stale re-time wrote may have made the instance
			// expired, and a breaker broke it: the window's consequence,
			// which the holder must learn at its next call.
			h.hold.forcedMust = h.hold.forcedMust || !h.mustLose
			h.hold.forced, h.mustLose, h.hold.movedBy = true, true, p
			w.log(h, fmt.Sprintf("its lock, re-timed by %s past its leases, was %s by %s", h.hold.retimedBy.label, what, p.label))
		default:
			w.violate(colTouch, p, "%s %s's lock instance #%d within its lease (expiry %s by %s's clock, now %s there)",
				what, h.label, e.ID, clock(h.hold.lease), h.label, clock(w.leaseNow(h)))
		}
	}
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// drainEvents takes in what the processes' scripts reported since the
// last step, process by process. Called with w.mu held.
func (w *world) drainEvents() {
	for _, p := range w.procs {
		evs := p.events
		p.events = nil
		if p.crashed {
			continue
		}
		for _, e := range evs {
			w.handle(p, e)
		}
	}
}

func (w *world) handle(p *proc, e event) {
	switch e.kind {
	case "begin":
		p.lastWrite, p.lastWriteID, p.forcedID = time.Time{}, 0, 0
		p.mustLose, p.checkLost = false, false // they were about an earlier acquisition
		w.log(p, e.op+" begins")
	case "acquired":
		p.acquiredOnce = true
		w.acqs++
		h := &holding{seq: w.acqs, instance: p.lastWriteID, lease: p.lastWrite}
		p.hold = h
		note := ""
		if h.instance != 0 && h.instance == p.forcedID {
			h.forced, p.mustLose = true, true
			note += "; broken by force while it acquired"
		}
		if h.lease.IsZero() {
			// No claim of its own written: hold it to the lifetime it asked for.
			h.lease = w.leaseNow(p).Add(w.sc.lifetime)
			note = "; NOTE: no claim of its own was written"
		}
		msg := fmt.Sprintf("holds the lock: instance #%d, expiry %s%s", h.instance, clock(h.lease), note)
		if e.ok {
			msg += fmt.Sprintf(", token %d", e.token)
		}
		if n, ok := w.srv.Lookup(w.lockPath); !ok || n.ID != h.instance {
			msg += "; NOTE: L is not that instance"
		}
		w.log(p, msg)
		if w.sc.fencing {
			// An acquisition that returns past its lease, or broken by
			// force, may carry a token smaller than one granted since:
			// that is what the token is for. It may never repeat one.
			switch {
			case !e.ok && !w.within(p):
				// Acquire returned past its lease (a pause after its
				// last look), and the lock was found lost (by a
				// keep-alive's refresh) before the token was read.
				w.log(p, "no token: the lock was lost before it was read; this acquisition is stale")
			case !e.ok:
				w.violate(colFencing, p, "acquired with fencing but without a token")
			case w.tokens[e.token]:
				w.violate(colFencing, p, "token %d granted twice", e.token)
			case e.token < w.lastToken && (h.forced || !w.within(p)):
				w.log(p, fmt.Sprintf("token %d is below %d, granted since; this acquisition is stale", e.token, w.lastToken))
			case e.token < w.lastToken:
				w.violate(colFencing, p, "token %d granted, within its lease, after token %d", e.token, w.lastToken)
			}
			w.tokens[e.token] = true
			w.lastToken = max(w.lastToken, e.token)
		}
	case "keepalive":
		if p.hold != nil {
			p.hold.kctx = e.ctx
		}
	case "release":
		p.hold = nil
		p.releasing = true
		p.checkLost = p.mustLose
		w.log(p, e.op+" begins")
	case "call":
		p.checkLost = p.mustLose
	case "force":
		p.forcing = e.ok
	case "result":
		p.releasing = false
		w.log(p, fmt.Sprintf("%s = %s%s", e.op, e.note, errText(e.err)))
		lost := errors.Is(e.err, flock.ErrLockLost)
		if lost {
			p.hold = nil
		}
		switch e.op {
		case "Refresh", "IsLocked", "Release", "guard":
			if p.checkLost && !lost {
				w.violate(colExclusion, p, "was past its lease while another process held the lock, yet %s, called after that, returned %v, not ErrLockLost", e.op, errText(e.err))
			}
			if p.checkLost || lost {
				p.mustLose = false
			}
		}
		p.checkLost = false
	}
}

func errText(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// checkHolders checks invariant 1 over every pair of processes that
// believe they hold the lock. Called with w.mu held.
func (w *world) checkHolders() {
	var holders []*proc
	for _, p := range w.procs {
		if p.hold == nil || p.crashed {
			continue
		}
		if k := p.hold.kctx; k != nil && k.Err() != nil {
			if cause := context.Cause(k); errors.Is(cause, flock.ErrLockLost) {
				w.log(p, "keep-alive: "+cause.Error())
				p.hold, p.mustLose = nil, false
				continue
			}
		}
		if !p.hold.forced {
			holders = append(holders, p)
		}
	}
	for i, a := range holders {
		for _, b := range holders[i+1:] {
			key := fmt.Sprintf("%d/%d", a.hold.seq, b.hold.seq)
			inA, inB := w.within(a), w.within(b)
			if inA && inB {
				if w.reported[key+" both"] {
					continue
				}
				w.reported[key+" both"] = true
				w.violate(colExclusion, nil, "%s and %s both hold the lock within their leases (expiries %s and %s by their clocks, now %s and %s)",
					a.label, b.label, clock(a.hold.lease), clock(b.hold.lease), clock(w.leaseNow(a)), clock(w.leaseNow(b)))
				continue
			}
			if w.reported[key+" stale"] {
				continue
			}
			w.reported[key+" stale"] = true
			w.counts[colStale]++
			cur, _ := w.srv.Lookup(w.lockPath)
			for _, p := range []*proc{a, b} {
				// The one whose instance is still the lock file holds it,
				// late as it is; the other has lost it.
				if !w.within(p) && cur.ID != p.hold.instance {
					p.mustLose = true
					w.log(p, "overlaps another holder while past its lease: its next call must report ErrLockLost")
				}
			}
		}
	}
}

// checkLeftovers checks invariant 4 once every process has finished, and
// that the names that are not the lock's are as they were (5).
func (w *world) checkLeftovers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	counters := 0
	for _, name := range w.srv.List(w.dir) {
		full := filepath.Join(w.dir, name)
		if _, ok := w.decoys[full]; ok {
			continue
		}
		if was, ok := w.planted[full]; ok {
			if n, _ := w.srv.Lookup(full); n.ID == was.ID {
				continue // there before the run, never broken
			}
		}
		switch {
		case name == w.base+".break" && w.unattributedBreak(full):
			// Created without hard links and crashed before the write:
			// nothing names its maker, so it goes once it has expired.
		case name == w.base+".fence":
		case strings.HasPrefix(name, w.base+".fence.") && isDigits(strings.TrimPrefix(name, w.base+".fence.")):
			counters++
			if counters > 1 {
				w.violate(colLeftovers, nil, "a second fencing counter %s", w.short(full))
			}
		default:
			w.violate(colLeftovers, nil, "%s left behind", w.short(full))
		}
	}
	for path, was := range w.decoys {
		n, ok := w.srv.Lookup(path)
		if !ok || n.ID != was.ID || !n.ModTime.Equal(was.ModTime) || string(n.Data) != string(was.Data) {
			w.violate(colOutside, nil, "%s was changed or removed", path)
		}
	}
}

// unattributedBreak reports whether the breakers' lock at path is empty
// or half-written, and its expiry and slop have not passed yet.
func (w *world) unattributedBreak(path string) bool {
	n, ok := w.srv.Lookup(path)
	if !ok {
		return false
	}
	if _, ok := claim.Parse(n.Data, "|"); ok {
		return false
	}
	// Every host judges it by a clock no earlier than its own (doc.go,
	// Time base): a host whose clock is behind waits that much longer.
	// And by the lower bound of its time base, which lags the
	// filesystem's clock by up to a stamp's grain: a second where stamps
	// are cut to the second, as sshfs's are (seed 30017077: the last
	// sweep came half a second after the expiry and slop, and its lower
	// bound, from a stamp cut to the second, could not show that yet).
	behind := time.Duration(0)
	for _, h := range w.sc.hosts {
		behind = max(behind, -h.cfg.Skew)
	}
	// And a whole second may be a cut that sshfs hosts wait out (cutBy).
	cut := time.Duration(0)
	if n.ModTime.Nanosecond() == 0 {
		cut = 2 * time.Second
	}
	return time.Now().Before(n.ModTime.Add(max(w.sc.slop, 5*time.Second) + behind + time.Second + cut))
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (w *world) outcome() *outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	return &outcome{seed: w.sc.seed, summary: w.sc.String(), counts: w.counts, trace: w.trace}
}

// hostClock is a host's wall clock for the Lock: the bubble's fake time
// plus the host's skew.
type hostClock struct{ h *simfs.Host }

func (c hostClock) Now() time.Time                       { return c.h.Now() }
func (c hostClock) NewTimer(d time.Duration) retry.Timer { return timer{time.NewTimer(d)} }

type timer struct{ t *time.Timer }

func (t timer) C() <-chan time.Time { return t.t.C }
func (t timer) Stop() bool          { return t.t.Stop() }

func (p *proc) options() []flock.Option {
	sc := p.w.sc
	opts := []flock.Option{
		flock.WithHostname(sc.hosts[p.host].name),
		flock.WithClock(hostClock{p.w.hosts[p.host]}),
		flock.WithLifetime(sc.lifetime),
		flock.WithClockSlop(sc.slop),
		flock.WithRetry(p.spec.policy),
		flock.SimWithFS(p.fs),
		flock.SimWithPID(p.fs.PID()),
		flock.SimWithRandom(p.rnd.Uint64),
		flock.SimWithOnNew(func(l *flock.Lock) {
			p.w.mu.Lock()
			p.lock = l
			p.w.mu.Unlock()
		}),
	}
	if sc.fencing {
		opts = append(opts, flock.WithFencing())
	}
	if p.spec.portable {
		opts = append(opts, flock.WithPortable())
	}
	if sc.deadOwnerBreak {
		opts = append(opts, flock.WithDeadOwnerBreak())
	}
	return opts
}

// main is the process's script.
func (p *proc) main() {
	w := p.w
	defer func() {
		w.mu.Lock()
		p.done = true
		if !p.crashed {
			p.fs.Exit()
		}
		w.mu.Unlock()
		w.poke()
	}()
	var l *flock.Lock
	defer func() {
		if l != nil {
			if !p.isCrashed() {
				p.event(event{kind: "release", op: "Close"})
			}
			l.Close()
		}
	}()
	swept := false
	for _, rd := range p.spec.rounds {
		if p.isCrashed() {
			return
		}
		if rd.kind == "guard" {
			p.guardRound(rd)
			continue
		}
		if l == nil {
			var err error
			if l, err = flock.New(w.lockPath, p.options()...); err != nil {
				panic(fmt.Sprintf("simulation: New: %v", err))
			}
		}
		if !swept {
			flock.SimForgetSweep(w.lockPath)
			swept = true
		}
		w.mu.Lock()
		p.lock = l
		w.mu.Unlock()
		if p.lockRound(l, rd) {
			l = nil
		}
	}
}

// lockRound runs one round on l and reports whether it closed l.
func (p *proc) lockRound(l *flock.Lock, rd round) (closed bool) {
	switch rd.kind {
	case "break", "force":
		force := rd.kind == "force"
		p.event(event{kind: "begin", op: fmt.Sprintf("Break(%v)", force)})
		p.event(event{kind: "force", ok: force})
		broke, err := l.Break(force)
		p.event(event{kind: "force", ok: false})
		p.event(event{kind: "result", op: "Break", note: fmt.Sprintf("%v, ", broke), err: err})
		return false
	}
	var held bool
	var err error
	if rd.kind == "try" {
		p.event(event{kind: "begin", op: "TryAcquire"})
		held, err = l.TryAcquire()
		p.event(event{kind: "result", op: "TryAcquire", note: fmt.Sprintf("%v, ", held), err: err})
	} else {
		p.event(event{kind: "begin", op: fmt.Sprintf("Acquire(timeout %v)", rd.timeout)})
		ctx, cancel := context.WithTimeout(context.Background(), rd.timeout)
		err = l.Acquire(ctx)
		cancel()
		held = err == nil
		p.event(event{kind: "result", op: "Acquire", err: err})
	}
	if !held || p.isCrashed() {
		return false
	}
	token, ok := l.Token()
	p.event(event{kind: "acquired", token: token, ok: ok})
	for _, st := range rd.body {
		if p.isCrashed() {
			return false
		}
		switch st.kind {
		case "sleep":
			time.Sleep(st.d)
		case "refresh":
			p.event(event{kind: "call"})
			err := l.Refresh(st.life)
			p.event(event{kind: "result", op: "Refresh", note: refreshNote(st.life), err: err})
		case "islocked":
			p.event(event{kind: "call"})
			ok, err := l.IsLocked()
			p.event(event{kind: "result", op: "IsLocked", note: fmt.Sprintf("%v, ", ok), err: err})
		case "keepalive":
			kctx, stop := l.KeepAlive(context.Background())
			p.event(event{kind: "keepalive", ctx: kctx})
			t := time.NewTimer(st.d)
			select {
			case <-t.C:
			case <-kctx.Done():
			}
			t.Stop()
			err := stop()
			p.event(event{kind: "result", op: "KeepAlive stop", err: err})
		}
	}
	if p.isCrashed() {
		return false
	}
	if rd.close {
		p.event(event{kind: "release", op: "Close"})
		err := l.Close()
		p.event(event{kind: "result", op: "Close", err: err})
		return true
	}
	p.event(event{kind: "release", op: "Release"})
	err = l.Release()
	p.event(event{kind: "result", op: "Release", err: err})
	return false
}

// guardRound runs one guard.Do, holding the lock for the round's sleep.
func (p *proc) guardRound(rd round) {
	flock.SimForgetSweep(p.w.lockPath)
	p.event(event{kind: "begin", op: fmt.Sprintf("guard.Do(timeout %v)", rd.timeout)})
	opts := append(p.options(), flock.WithTimeout(rd.timeout))
	err := guard.Do(context.Background(), p.w.lockPath, func(ctx context.Context) error {
		token, ok := guard.Token(ctx)
		p.event(event{kind: "acquired", token: token, ok: ok})
		p.event(event{kind: "keepalive", ctx: ctx})
		t := time.NewTimer(rd.body[0].d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		p.event(event{kind: "release", op: "guard fn returns; release"})
		return nil
	}, opts...)
	p.event(event{kind: "result", op: "guard", err: err})
}

// refreshNote says what lifetime a refresh set, where it set a new one.
func refreshNote(life time.Duration) string {
	if life == 0 {
		return ""
	}
	return fmt.Sprintf("(to %v) ", life)
}
