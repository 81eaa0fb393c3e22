//go:build unix

package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ownerBlocks says why this user may not break the lock at path, as the
// system would refuse it, for the line shown while nfsflock waits: in a
// sticky directory (mode 1777, like /tmp) only a file's owner, the
// directory's owner and root may remove or rename it. It looks at the
// breakers' lock beside the lock file, which a breaker takes first, and
// then at the lock file, and says it in flock's words: "the lock is owned
// by uid 1001: only that user or root can break it". It returns "" when
// the modes and owners put nothing in the way.
//
// It is a forecast from modes and owners, where the timeout's message
// reports the refusal that flock met (blockedWords): the wait itself runs
// inside Acquire, which does not say why it goes on until it ends.
func ownerBlocks(path string) string {
	euid := os.Geteuid()
	if euid == 0 {
		return ""
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil || dir.Mode()&fs.ModeSticky == 0 {
		return ""
	}
	if st, ok := dir.Sys().(*syscall.Stat_t); !ok || int(st.Uid) == euid {
		return ""
	}
	for _, f := range []struct{ path, what string }{
		{path + ".break", "the breakers' lock beside it"},
		{path, "the lock"},
	} {
		fi, err := os.Lstat(f.path)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid {
			return fmt.Sprintf("%s is owned by uid %d: %s", f.what, st.Uid, ownerOnly)
		}
	}
	return ""
}
