package fsys

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nfsflock/nfsflock/internal/claim"
)

// namespace hashes the boot ID with the identity of the pid namespace:
// either alone repeats (every host's first pid namespace has the same
// inode number; a boot ID says nothing of containers).
var namespace = sync.OnceValue(func() uint64 {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0
	}
	h := sha256.New()
	h.Write(boot)
	h.Write([]byte(strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(st.Ino, 10)))
	return binary.BigEndian.Uint64(h.Sum(nil))%claim.MaxTag + 1
})
