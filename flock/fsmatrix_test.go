//go:build unix

package flock_test

import (
	"testing"

	"github.com/nfsflock/nfsflock/internal/testenv"
)

// onEachFilesystem runs test once per filesystem that the process suites
// cover, as a subtest named after it, in a new empty directory there: the
// default temporary directory, then XFS, btrfs, tmpfs and overlayfs where
// .ci/setup mounted them. A filesystem that is not mounted is a skipped
// subtest that names its variable, and a failed one under CI=true.
func onEachFilesystem(t *testing.T, test func(t *testing.T, dir string)) {
	t.Helper()
	for _, fs := range testenv.Filesystems() {
		t.Run(fs.Name, func(t *testing.T) {
			test(t, fs.Dir(t))
		})
	}
}

// onEachFilesystemAtOnce is onEachFilesystem for a test that mostly waits
// (for a lifetime to run out): it runs t in parallel with other tests and
// the filesystems' subtests at once.
func onEachFilesystemAtOnce(t *testing.T, test func(t *testing.T, dir string)) {
	t.Helper()
	t.Parallel()
	for _, fs := range testenv.Filesystems() {
		t.Run(fs.Name, func(t *testing.T) {
			t.Parallel()
			test(t, fs.Dir(t))
		})
	}
}
