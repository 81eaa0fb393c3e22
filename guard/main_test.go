package guard_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// roles are what a child process can be asked to do; a role ends the
// child with its exit status.
var roles = map[string]func() int{}

func TestMain(m *testing.M) {
	testenv.Dispatch(roles)
	goleak.VerifyTestMain(m)
}
