package flock_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// roles are what a child process can be asked to do. Test files register
// theirs in init; a role ends the child with its exit status.
var roles = map[string]func() int{}

// envMutant names a mutant (flock/mutant.go) to turn on for the whole
// run: TestStagingFindsMutants runs each mutant's staging tests so.
const envMutant = "NFSFLOCK_TEST_MUTANT"

func TestMain(m *testing.M) {
	testenv.Dispatch(roles)
	if name := os.Getenv(envMutant); name != "" {
		if _, ok := flock.SimMutants()[name]; !ok {
			fmt.Fprintf(os.Stderr, "%s=%s: no such mutant\n", envMutant, name)
			os.Exit(2)
		}
		flock.SimSetMutant(name)
	}
	os.Exit(m.Run())
}
