package flock_test

import (
	"os"
	"testing"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// roles are what a child process can be asked to do. Test files register
// theirs in init; a role ends the child with its exit status.
var roles = map[string]func() int{}

func TestMain(m *testing.M) {
	testenv.Dispatch(roles)
	os.Exit(m.Run())
}
