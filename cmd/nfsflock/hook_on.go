//go:build unix && nfsflocktest

package main

import (
	"os"
	"time"
)

// guardDelay, in a binary built for the tests (-tags nfsflocktest), waits
// for as long as NFSFLOCK_TEST_GUARD_DELAY says between the start of the
// command's process and the watchdog's learning its group: the moment a
// busy system may keep nfsflock from running, which a test cannot provoke
// at will. It is a fault seam, not an option.
func guardDelay() {
	if d, err := time.ParseDuration(os.Getenv("NFSFLOCK_TEST_GUARD_DELAY")); err == nil {
		time.Sleep(d)
	}
}
