// Command compare measures nfsflock against the raw system calls of its
// protocol, flufl.lock, gofrs/flock and proper-lockfile, side by side in
// one run with real processes, and prints a table of ratios against the
// targets of issue 10. It also writes the hand-off latency distribution of
// each peer as an SVG plot.
//
//	cd compare && ./install-peers.sh && go run ./cmd/compare
//
// docs/BENCHMARKS.md shows a run and says what each row measures. -smoke
// runs every measurement with small counts, to show that all of them work
// (CI runs it); its figures mean little.
package main

import (
	"embed"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

//go:embed workers/flufl_worker.py workers/proper_worker.js
var workerFiles embed.FS

type options struct {
	dir        string
	cycles     int
	rounds     int
	handoffs   int
	crowd      int
	idlers     int
	idle       time.Duration
	fairProcs  int
	fairCycles int
	slowCycles int // fairness cycles for the slow peers (flufl.lock, proper-lockfile)
	crashes    int
	sshfsA     string
	sshfsB     string
	svg        string
	md         string
	npm        string
	python     string
	peers      map[string]bool
}

func main() {
	var (
		o      options
		smoke  bool
		peers  string
		worker workerConfig
		isWork bool
	)
	flag.BoolVar(&isWork, "worker", false, "run as a worker process (internal)")
	flag.StringVar(&worker.peer, "peer", "", "worker: the peer")
	flag.StringVar(&worker.path, "lock", "", "worker: the lock path")
	flag.DurationVar(&worker.lifetime, "lifetime", time.Minute, "worker: lock lifetime")
	flag.DurationVar(&worker.slop, "slop", time.Second, "worker: clock slop (nfsflock)")
	flag.BoolVar(&worker.deadOwner, "deadowner", false, "worker: nfsflock.WithDeadOwnerBreak")

	flag.BoolVar(&smoke, "smoke", false, "small counts: check that every measurement runs (CI)")
	flag.StringVar(&o.dir, "dir", "", "directory for the lock files (default: a new one under $TMPDIR)")
	flag.IntVar(&o.cycles, "cycles", 3000, "uncontended cycles per round for the Go peers (a tenth for Python and Node)")
	flag.IntVar(&o.rounds, "rounds", 7, "rounds of uncontended cycles; the median round counts")
	flag.IntVar(&o.handoffs, "handoffs", 40, "hand-offs measured per peer between two processes")
	flag.IntVar(&o.crowd, "crowd", 100, "waiting processes in the crowd hand-off")
	flag.IntVar(&o.idlers, "idlers", 16, "processes blocked on a held lock while their CPU time is measured")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "how long the blocked processes' CPU time is measured")
	flag.IntVar(&o.fairProcs, "fair-procs", 8, "processes contending in the fairness run")
	flag.IntVar(&o.fairCycles, "fair-cycles", 1000, "cycles per process in the fairness run")
	flag.IntVar(&o.slowCycles, "slow-cycles", 20, "cycles per process in the fairness run for flufl.lock and proper-lockfile")
	flag.IntVar(&o.crashes, "crashes", 3, "crash recoveries measured per peer")
	flag.StringVar(&o.sshfsA, "sshfs-a", os.Getenv("NFSFLOCK_SSHFS_A"), "one sshfs view of a directory (default $NFSFLOCK_SSHFS_A)")
	flag.StringVar(&o.sshfsB, "sshfs-b", os.Getenv("NFSFLOCK_SSHFS_B"), "another view of it (default $NFSFLOCK_SSHFS_B)")
	flag.StringVar(&o.svg, "svg", "out/handoff.svg", "where to write the hand-off plot")
	flag.StringVar(&o.md, "md", "out/results.md", "where to write the table (Markdown)")
	flag.StringVar(&o.npm, "npm", "npm/node_modules", "node_modules holding proper-lockfile (see install-peers.sh)")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "the Python with flufl.lock (Debian's python3-flufl.lock)")
	flag.StringVar(&peers, "peers", "raw,nfsflock,flufl,gofrs,proper", "peers to measure")
	flag.Parse()

	if isWork {
		runWorker(worker)
		return
	}
	if smoke {
		// Small counts, where the command line does not say otherwise.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{
			"cycles": "200", "rounds": "1", "handoffs": "3", "crowd": "8", "idlers": "4", "idle": "1s",
			"fair-procs": "4", "fair-cycles": "50", "slow-cycles": "3", "crashes": "1",
		} {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}
	o.peers = map[string]bool{}
	for _, p := range strings.Split(peers, ",") {
		o.peers[strings.TrimSpace(p)] = true
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "compare-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	scripts, err := os.MkdirTemp("", "compare-workers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scripts)
	for _, name := range []string{"flufl_worker.py", "proper_worker.js"} {
		b, _ := workerFiles.ReadFile("workers/" + name)
		if err := os.WriteFile(filepath.Join(scripts, name), b, 0o644); err != nil {
			return err
		}
	}
	npm, err := filepath.Abs(o.npm)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	h := &harness{o: o, self: self, scripts: scripts, npm: npm, log: os.Stderr}
	r, err := h.measure()
	if err != nil {
		return err
	}
	table := r.table(o)
	fmt.Print(table)
	if err := writeFile(o.md, table); err != nil {
		return err
	}
	if err := writeFile(o.svg, r.svg()); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", o.md, o.svg)
	return nil
}

func writeFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// harness starts workers and runs the measurements.
type harness struct {
	o       options
	self    string
	scripts string
	npm     string
	log     io.Writer
	n       int // lock directories made so far
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "compare: "+format+"\n", args...)
}
