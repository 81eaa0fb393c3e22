//go:build unix

package flock_test

import (
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nfsflock/nfsflock/flock"
)

// stagingTests names, for each mutant that the simulation is not expected
// to find within its CI budget, the regression tests that stage the
// defect it puts back (docs/RELIABILITY.md): each must fail with the
// mutant on, and passes, as every test, with it off.
var stagingTests = map[string][]string{
	"breakers-move-aside":    {"TestBreakersLockNeverLeftFree", "TestRemoverBreaksNotBesideLiveBreaker", "TestStaleRemoverBreaksNotBesideLiveBreaker", "TestRemovalLeavesNoFreePathUnderBreaker"},
	"breakers-put-back":      {"TestBreakersLockMovedStaysOut", "TestUnreadableBreakersLockStaysOut"},
	"breakers-no-relook":     {"TestBreakerWhoseBreakersLockWasTakenMovesNothing", "TestBreakerChecksItsBreakersLockLast"},
	"expiry-via-path":        {"TestPausedAcquirerRetimesOnlyItsClaim"},
	"dead-swapper-breakable": {"TestDeadSwapperKeepsBreakersLock"},
	"far-breakers-at-once":   {"TestFastBreakersLockIsLive", "TestFarBreakersLockBrokenOnceUnchanged"},
	"no-times-confirm":       {"TestStaleTimesAfterSetting"},
	"no-cut-allowance":       {"TestBreakerWaitsOutItsMountsCut", "TestReviewBreakerFineOwnViewWaitsOutCut", "TestReviewFineHolderCutStoreBrokenByFineBreaker"},
	"retime-past-new-lease":  {"TestStaleTimesShorterRefreshNotSetAgain"},
	"give-up-marked-by-move": {"TestRemoverHoldsWhatItTook"},
	"no-link-settle":         {"TestFluflLinkedPastExpiryNotBroken", "TestSettlingOnlyDelaysFluflFiles"},
	"no-move-check":          {"TestBreakRestoresFreshLock"},
	"quick-look-by-name":     {"TestQuickLookKnowsForgery"},
	"recheck-unbounded":      {"TestBreakerPausedWhileRecheckingMovesNothing"},
	"refresh-no-lease":       {"TestPastLeaseLeavesLockToBreakers"},
	"release-no-lease":       {"TestPastLeaseLeavesLockToBreakers"},
	"release-no-look":        {"TestReleaseLooksBeforeMoving"},
	"swap-back":              {"TestPausedRemoverSwapsBackNothing", "TestSwappedOutStaysOut"},
	"swap-no-relook":         {"TestRemoverLooksAgainBeforeSwap"},
	"swap-no-yield":          {"TestLateRemoverTakesOver"},
	"swap-past-lease":        {"TestPausedRemoverSwapsInNothing"},
	"sweep-any-pid-ns":       {"TestSweepSparesOtherPidNamespaces"},
}

// TestStagingFindsMutants runs each staging test again, in a child with
// its mutant turned on (envMutant), and requires it to fail: the
// simulation's TestSimulationFindsMutants does the same for the mutants
// it is expected to find. A staging test that skips in the child (its
// environment is missing) skips here.
func TestStagingFindsMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the staging tests again, once per mutant")
	}
	for _, name := range slices.Sorted(maps.Keys(flock.SimMutants())) {
		if _, ok := stagingTests[name]; !ok && !flock.SimMutants()[name].Sim {
			t.Errorf("mutant %s is not expected of the simulation, and no staging test is named for it", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(stagingTests)) {
		for _, test := range stagingTests[name] {
			t.Run(name+"/"+test, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
				cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
					// A missing environment skips rather than fails.
					return strings.HasPrefix(kv, "CI=")
				}), envMutant+"="+name)
				out, err := cmd.CombinedOutput()
				switch {
				case strings.Contains(string(out), "--- SKIP: "+test):
					t.Skipf("%s skips here:\n%s", test, out)
				case !strings.Contains(string(out), "--- FAIL: "+test) && !strings.Contains(string(out), "--- PASS: "+test):
					t.Fatalf("%s did not run with mutant %s (%v):\n%s", test, name, err, out)
				case err == nil:
					t.Errorf("%s passes with mutant %s (%s) on; it must fail", test, name, flock.SimMutants()[name].What)
				}
			})
		}
	}
}
