package flock_test

import (
	"flag"
	"fmt"
	"os"
	"runtime"
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
	// The process suites mostly wait (see storm): unless told otherwise,
	// run more of them at once than there are CPUs. Under Wine, which
	// runs few of them, the default stays.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet && runtime.GOOS != "windows" {
		flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}
