package flock

import (
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
)

// Hooks for the simulation (sim_test.go), which is in package flock_test
// so that it can drive guard too.
var (
	SimWithFS     = withFS
	SimWithPID    = withPID
	SimWithRandom = withRandom
	SimWithOnNew  = withOnNew

	// WithoutTimeBase makes a Lock judge by its own clock alone, for the
	// tests that show what the time base prevents and those that stand
	// for time passing with a clock set ahead.
	WithoutTimeBase = withoutTimeBase
)

// SimForgetSweep forgets when this process last swept for path, so that
// the next acquisition sweeps as a new process's first one does: in the
// simulation many simulated processes share one real one, and with it the
// bookkeeping that is per process in production.
func SimForgetSweep(path string) {
	swept.Lock()
	defer swept.Unlock()
	delete(swept.at, path)
}

// SimForgetFS forgets how Locks on f found they must publish their lock
// files (portableDirs), as a new process would not know it.
func SimForgetFS(f fsys.FS) {
	portableDirs.Range(func(k, _ any) bool {
		if k.(portableKey).fs == f {
			portableDirs.Delete(k)
		}
		return true
	})
}

// SimMutants returns the mutants' names, what each puts back, and whether
// the simulation is expected to find it.
func SimMutants() map[string]SimMutant {
	m := make(map[string]SimMutant, len(mutants))
	for name, info := range mutants {
		m[name] = SimMutant{What: info.what, Sim: info.sim}
	}
	return m
}

// SimMutant describes a mutant for the simulation's tests.
type SimMutant struct {
	What string
	Sim  bool // the simulation is expected to find it within its budget
}

// SimSetMutant turns the named mutant on ("" for none) and returns a
// function that turns it off again. Set it only while no Lock is in use.
func SimSetMutant(name string) (undo func()) {
	old := mutant
	mutant = name
	return func() { mutant = old }
}

// SimMutantOn reports whether the named mutant is on.
func SimMutantOn(name string) bool { return mutated(name) }

// SimLeaseOver reports whether l, by its own bounds on the filesystem's
// clock, would judge its own lease that ends at expiry over now.
func SimLeaseOver(l *Lock, expiry time.Time) bool { return l.leaseOver(expiry) }
