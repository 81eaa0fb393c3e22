//go:build (!unix && !windows) || aix

package fsys

import (
	"errors"
	"time"
)

// OS is the real system. Here (AIX, Plan 9, js, wasip1) it is not
// supported: every call fails with errors.ErrUnsupported.
var OS FS = unsupportedFS{}

type unsupportedFS struct{}

func (unsupportedFS) Create(string, []byte, time.Time) (File, error) {
	return nil, errors.ErrUnsupported
}
func (unsupportedFS) Lstat(string) (Info, error)           { return Info{}, errors.ErrUnsupported }
func (unsupportedFS) Link(string, string) error            { return errors.ErrUnsupported }
func (unsupportedFS) Rename(string, string) error          { return errors.ErrUnsupported }
func (unsupportedFS) Exchange(string, string) error        { return errors.ErrUnsupported }
func (unsupportedFS) Remove(string) error                  { return errors.ErrUnsupported }
func (unsupportedFS) RenameNoReplace(string, string) error { return errors.ErrUnsupported }
func (unsupportedFS) Open(string) (File, error)            { return nil, errors.ErrUnsupported }
func (unsupportedFS) ReadDir(string) ([]string, error)     { return nil, errors.ErrUnsupported }
func (unsupportedFS) ProcessAlive(int) bool                { return false }
func (unsupportedFS) Namespace() uint64                    { return 0 }
