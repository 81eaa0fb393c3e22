//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package fsys

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/claim"
)

// namespace hashes the boot time: these systems have one pid space per
// boot (jails share the host's pids' numbering but hide them, so a jailed
// process may judge a host process dead; see the README).
var namespace = sync.OnceValue(func() uint64 {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return 0
	}
	h := sha256.Sum256([]byte("boottime:" + strconv.FormatInt(int64(tv.Sec), 10) + "." + strconv.FormatInt(int64(tv.Usec), 10)))
	return binary.BigEndian.Uint64(h[:])%claim.MaxTag + 1
})
