//go:build unix

package flock_test

import "testing"

// The process suites mostly wait: on lifetimes running out, on Python's
// sleeps, on sshfs. They run side by side (TestMain lets more of them run
// at once than there are CPUs), except the storms: suites whose processes
// take the lock in a loop, polling every few milliseconds, keep the CPUs
// busy, and several of them at once on a two-core machine would starve a
// holder of the CPU past a short lifetime (the kill storm's is 500 ms), a
// failure of the machine, not of the lock. At most two storms run at once,
// beside the suites that wait.
var stormSlots = make(chan struct{}, 2)

// storm marks t as a storm: it runs in parallel with other tests, holding
// one of the storms' slots until it ends.
func storm(t *testing.T) {
	t.Helper()
	t.Parallel()
	stormSlots <- struct{}{}
	t.Cleanup(func() { <-stormSlots })
}
