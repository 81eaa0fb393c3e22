package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// results are the figures of one run.
type results struct {
	cycle   map[string]time.Duration   // one uncontended cycle, median round
	handoff map[string][]time.Duration // release returned -> waiter's acquire returned
	idle    map[string]float64         // CPU of the blocked processes, in cores
	fair    map[string]fairness
	crash   map[string][]time.Duration // acquired after the moment the rules allow
	skipped []string
}

type fairness struct {
	procs, cycles int
	total         float64 // acquisitions per second, all processes together
	single        float64 // acquisitions per second of one process alone
	spread        float64 // slowest process's time over the fastest's
	// CPU time of all the processes per acquisition, alone and together:
	// what waiting costs, steadier than the rates on a busy machine.
	singleCPU, totalCPU time.Duration
}

func (h *harness) measure() (*results, error) {
	r := &results{
		cycle:   map[string]time.Duration{},
		handoff: map[string][]time.Duration{},
		idle:    map[string]float64{},
		fair:    map[string]fairness{},
		crash:   map[string][]time.Duration{},
	}
	if h.o.peers["proper"] {
		if _, err := os.Stat(filepath.Join(h.npm, "proper-lockfile")); err != nil {
			return nil, fmt.Errorf("proper-lockfile is not installed in %s: run ./install-peers.sh, or leave it out with -peers", h.npm)
		}
	}
	waiters := h.waitingPeers()
	steps := []struct {
		name string
		run  func() error
	}{
		{"uncontended cycles", func() error { return h.cycles(r) }},
		{"hand-off between two processes", func() error {
			for _, p := range waiters {
				d := h.dir()
				s, err := h.handoffPairs(p, d, d, 20*time.Millisecond)
				if err != nil {
					return err
				}
				r.handoff[p] = s
			}
			return nil
		}},
		{"hand-off to a crowd", func() error {
			for _, p := range []string{"nfsflock", "gofrs"} {
				if h.o.peers[p] {
					s, err := h.crowd(p)
					if err != nil {
						return err
					}
					r.handoff[p+"-crowd"] = s
				}
			}
			return nil
		}},
		{"hand-off across sshfs clients", func() error {
			if h.o.sshfsA == "" || h.o.sshfsB == "" || !h.o.peers["nfsflock"] {
				r.skipped = append(r.skipped, "hand-off across sshfs clients: NFSFLOCK_SSHFS_A and NFSFLOCK_SSHFS_B are not set (source .ci/setup)")
				return nil
			}
			sub := fmt.Sprintf("compare-%d", os.Getpid())
			if err := os.MkdirAll(filepath.Join(h.o.sshfsA, sub), 0o755); err != nil {
				return err
			}
			defer os.RemoveAll(filepath.Join(h.o.sshfsA, sub))
			// Past a second, a polling waiter sleeps about its cap.
			s, err := h.handoffPairs("nfsflock", filepath.Join(h.o.sshfsA, sub), filepath.Join(h.o.sshfsB, sub), time.Second)
			r.handoff["nfsflock-sshfs"] = s
			return err
		}},
		{"cost of waiting", func() error {
			for _, p := range waiters {
				c, err := h.idleCPU(p)
				if err != nil {
					return err
				}
				r.idle[p] = c
			}
			return nil
		}},
		{"fairness", func() error {
			for _, p := range waiters {
				f, err := h.fairness(p)
				if err != nil {
					return err
				}
				r.fair[p] = f
			}
			return nil
		}},
		{"crash recovery", func() error {
			for _, p := range append([]string{"nfsflock-deadowner"}, waiters...) {
				if p == "nfsflock-deadowner" && !h.o.peers["nfsflock"] {
					continue
				}
				s, err := h.crash(p)
				if err != nil {
					return err
				}
				r.crash[p] = s
			}
			return nil
		}},
	}
	for _, s := range steps {
		start := time.Now()
		h.logf("%s ...", s.name)
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		h.logf("%s: done in %v", s.name, time.Since(start).Round(time.Millisecond))
	}
	return r, nil
}

// waitingPeers are the peers that can wait for a lock: all but the raw
// baseline.
func (h *harness) waitingPeers() []string {
	var ps []string
	for _, p := range peerNames {
		if p != "raw" && h.o.peers[p] {
			ps = append(ps, p)
		}
	}
	return ps
}

// dir returns a new directory for one measurement's lock.
func (h *harness) dir() string {
	h.n++
	d := filepath.Join(h.o.dir, fmt.Sprintf("m%03d", h.n))
	os.MkdirAll(d, 0o755)
	return d
}

// cycles measures uncontended cycles, the peers taking turns round by
// round so that the machine's drift touches all alike.
func (h *harness) cycles(r *results) error {
	type entry struct {
		key, peer, mode string
		n               int
		p               *proc
		rounds          []time.Duration
	}
	var es []*entry
	add := func(key, peer, mode string, n int) {
		if h.o.peers[peer] {
			es = append(es, &entry{key: key, peer: peer, mode: mode, n: n})
		}
	}
	add("raw", "raw", "reuse", h.o.cycles)
	add("nfsflock", "nfsflock", "fresh", h.o.cycles)
	add("nfsflock-reuse", "nfsflock", "reuse", h.o.cycles)
	add("gofrs", "gofrs", "reuse", h.o.cycles)
	add("flufl", "flufl", "fresh", max(h.o.cycles/10, 10))
	add("proper", "proper", "fresh", max(h.o.cycles/10, 10))
	for _, e := range es {
		p, err := h.start(e.peer, filepath.Join(h.dir(), "app.lck"), time.Minute, time.Second, false)
		if err != nil {
			return err
		}
		defer p.stop()
		e.p = p
		if _, err := p.call("cycles %d %s", max(e.n/10, 1), e.mode); err != nil { // warm up
			return err
		}
	}
	for range h.o.rounds {
		for _, e := range es {
			f, err := e.p.call("cycles %d %s", e.n, e.mode)
			if err != nil {
				return err
			}
			e.rounds = append(e.rounds, time.Duration(int64s(f)[0]/int64(e.n)))
		}
	}
	for _, e := range es {
		r.cycle[e.key] = median(e.rounds)
	}
	return nil
}

// longLifetime is the lock lifetime (proper-lockfile: staleness) a
// measurement that must not see a lock expire gives its workers.
const longLifetime = time.Minute

// handoffPairs measures hand-offs between a holder using the lock at
// dirA/app.lck and a waiter using it at dirB/app.lck (the same directory
// through two mounts, or the same path). The waiter waits at least
// settle, and up to 100 ms more, before the release.
func (h *harness) handoffPairs(peer, dirA, dirB string, settle time.Duration) ([]time.Duration, error) {
	a, err := h.start(peer, filepath.Join(dirA, "app.lck"), longLifetime, time.Second, false)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	b, err := h.start(peer, filepath.Join(dirB, "app.lck"), longLifetime, time.Second, false)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	var samples []time.Duration
	for range h.o.handoffs {
		if _, err := a.call("acquire"); err != nil {
			return nil, err
		}
		if err := b.send("acquire"); err != nil {
			return nil, err
		}
		// A random time waiting, so that polling waiters are caught at
		// every phase of their sleep.
		time.Sleep(settle + rand.N(100*time.Millisecond))
		rel, err := a.call("release")
		if err != nil {
			return nil, err
		}
		acq, err := b.recv()
		if err != nil {
			return nil, err
		}
		samples = append(samples, time.Duration(int64s(acq)[0]-int64s(rel)[0]))
		if _, err := b.call("release"); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// crowd starts o.crowd processes waiting for a held lock, each to take it
// once, hold it a millisecond and release it, and measures every hand-off
// of the chain that follows the holder's release.
func (h *harness) crowd(peer string) ([]time.Duration, error) {
	path := filepath.Join(h.dir(), "app.lck")
	holder, err := h.start(peer, path, longLifetime, time.Second, false)
	if err != nil {
		return nil, err
	}
	defer holder.stop()
	if _, err := holder.call("acquire"); err != nil {
		return nil, err
	}
	var ps []*proc
	defer func() { stopAll(ps) }()
	for range h.o.crowd {
		p, err := h.start(peer, path, longLifetime, time.Second, false)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
		if err := p.send("take 1 1000"); err != nil {
			return nil, err
		}
	}
	time.Sleep(500*time.Millisecond + time.Duration(h.o.crowd)*10*time.Millisecond)
	f, err := holder.call("release")
	if err != nil {
		return nil, err
	}
	type hold struct{ acq, rel int64 }
	var holds []hold
	for _, p := range ps {
		f, err := p.recv()
		if err != nil {
			return nil, err
		}
		for _, pair := range f {
			t1, t2, _ := strings.Cut(pair, ",")
			a, _ := strconv.ParseInt(t1, 10, 64)
			b, _ := strconv.ParseInt(t2, 10, 64)
			holds = append(holds, hold{a, b})
		}
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].acq < holds[j].acq })
	prev := int64s(f)[0]
	var samples []time.Duration
	for _, x := range holds {
		samples = append(samples, time.Duration(x.acq-prev))
		prev = x.rel
	}
	if os.Getenv("COMPARE_DEBUG") != "" {
		h.logf("crowd %s: %v", peer, samples)
	}
	return samples, nil
}

// idleCPU blocks o.idlers processes on a held lock and returns the CPU
// they use together over o.idle, in cores.
func (h *harness) idleCPU(peer string) (float64, error) {
	path := filepath.Join(h.dir(), "app.lck")
	holder, err := h.start(peer, path, longLifetime, time.Second, false)
	if err != nil {
		return 0, err
	}
	defer holder.kill()
	if _, err := holder.call("acquire"); err != nil {
		return 0, err
	}
	var ps []*proc
	defer func() {
		for _, p := range ps {
			p.kill()
		}
	}()
	for range h.o.idlers {
		p, err := h.start(peer, path, longLifetime, time.Second, false)
		if err != nil {
			return 0, err
		}
		ps = append(ps, p)
		if err := p.send("acquire"); err != nil {
			return 0, err
		}
	}
	// Past start-up, and past the backoff's growth to its cap.
	time.Sleep(2 * time.Second)
	total := func() (time.Duration, error) {
		var sum time.Duration
		for _, p := range ps {
			c, err := cpuTime(p.cmd.Process.Pid)
			if err != nil {
				return 0, err
			}
			sum += c
		}
		return sum, nil
	}
	c0, err := total()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(h.o.idle)
	c1, err := total()
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(time.Since(start)), nil
}

// fairness has o.fairProcs processes take the lock o.fairCycles times
// each around an empty critical section, and one process alone as many
// times.
func (h *harness) fairness(peer string) (fairness, error) {
	k := h.o.fairCycles
	if peer == "flufl" || peer == "proper" {
		k = h.o.slowCycles
	}
	f := fairness{procs: h.o.fairProcs, cycles: k}
	path := filepath.Join(h.dir(), "app.lck")
	run := func(n int) ([][]int64, time.Duration, error) {
		var ps []*proc
		defer func() { stopAll(ps) }()
		for range n {
			p, err := h.start(peer, path, longLifetime, time.Second, false)
			if err != nil {
				return nil, 0, err
			}
			ps = append(ps, p)
		}
		cpu := func() time.Duration {
			var sum time.Duration
			for _, p := range ps {
				c, _ := cpuTime(p.cmd.Process.Pid)
				sum += c
			}
			return sum
		}
		// Each worker answers once first, so that its start-up is not
		// counted.
		for _, p := range ps {
			if _, err := p.call("cycles 0 reuse"); err != nil {
				return nil, 0, err
			}
		}
		cpu0 := cpu()
		for _, p := range ps {
			if err := p.send("take %d 0", k); err != nil {
				return nil, 0, err
			}
		}
		var out [][]int64
		var used time.Duration
		for i, p := range ps {
			a, err := p.recv()
			if err != nil {
				return nil, 0, err
			}
			if i == len(ps)-1 {
				// Every process has answered but for its reading, which
				// the next command would not change.
				used = cpu() - cpu0
			}
			var ts []int64
			for _, pair := range a {
				t1, t2, _ := strings.Cut(pair, ",")
				x, _ := strconv.ParseInt(t1, 10, 64)
				y, _ := strconv.ParseInt(t2, 10, 64)
				ts = append(ts, x, y)
			}
			out = append(out, ts)
		}
		return out, used / time.Duration(n*k), nil
	}
	one, cpu1, err := run(1)
	if err != nil {
		return f, err
	}
	f.single = float64(k) / time.Duration(one[0][len(one[0])-1]-one[0][0]).Seconds()
	all, cpuN, err := run(f.procs)
	if err != nil {
		return f, err
	}
	f.singleCPU, f.totalCPU = cpu1, cpuN
	start, end := all[0][0], all[0][0]
	for _, ts := range all {
		start = min(start, ts[0])
		end = max(end, ts[len(ts)-1])
	}
	fastest, slowest := end, start
	for _, ts := range all {
		fastest = min(fastest, ts[len(ts)-1])
		slowest = max(slowest, ts[len(ts)-1])
	}
	f.total = float64(f.procs*k) / time.Duration(end-start).Seconds()
	f.spread = float64(slowest-start) / float64(fastest-start)
	return f, nil
}

// crash SIGKILLs a holder while another process waits, and measures how
// long after the moment the peer's rules allow a break the waiter holds
// the lock: expiry plus clock slop (nfsflock: 1 s lifetime, 1 s slop;
// flufl.lock: 1 s lifetime, its fixed 10 s slop), the last refresh plus
// the staleness (proper-lockfile: 2 s, its least), or the holder's death
// (nfsflock with WithDeadOwnerBreak; gofrs/flock, whose kernel lock dies
// with its process).
func (h *harness) crash(peer string) ([]time.Duration, error) {
	var samples []time.Duration
	for range h.o.crashes {
		path := filepath.Join(h.dir(), "app.lck")
		kind, lifetime, slop, deadOwner := peer, time.Second, time.Second, false
		switch peer {
		case "nfsflock-deadowner":
			kind, lifetime, deadOwner = "nfsflock", longLifetime, true
		case "flufl":
			slop = 10 * time.Second // flufl.lock's CLOCK_SLOP
		case "proper":
			lifetime, slop = 2*time.Second, 2*time.Second // staleness
		}
		holder, err := h.start(kind, path, lifetime, slop, deadOwner)
		if err != nil {
			return nil, err
		}
		if _, err := holder.call("acquire"); err != nil {
			holder.kill()
			return nil, err
		}
		waiter, err := h.start(kind, path, lifetime, slop, deadOwner)
		if err != nil {
			holder.kill()
			return nil, err
		}
		if err := waiter.send("acquire"); err != nil {
			return nil, err
		}
		time.Sleep(300 * time.Millisecond)
		holder.kill()
		allowed := time.Now()
		switch peer {
		case "nfsflock", "flufl":
			fi, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("the killed holder's lock file: %w", err)
			}
			allowed = fi.ModTime().Add(slop)
		case "proper":
			fi, err := os.Stat(path + ".lock")
			if err != nil {
				return nil, fmt.Errorf("the killed holder's lock: %w", err)
			}
			allowed = fi.ModTime().Add(slop)
		}
		f, err := waiter.recv()
		if err != nil {
			return nil, err
		}
		samples = append(samples, time.Duration(int64s(f)[1]-allowed.UnixNano()))
		waiter.stop()
	}
	return samples, nil
}

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }

// quantile returns the q-quantile of d by the nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}
