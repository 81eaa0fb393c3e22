//go:build linux

package compare

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RawCycle is the floor for a link(2)-based lock: the system calls of one
// uncontended acquisition and release that the protocol cannot do
// without, with nothing else. It creates the claim exclusively without
// following symlinks, writes its name into it, sets its times to the
// expiry through the descriptor, links it to the lock path, checks
// through a fresh descriptor that the lock file holds the claim's contents
// (what a client must do on a network filesystem, where a link's reply
// can be lost), and unlinks the lock and the claim.
//
// It is the one copy of the baseline: the benchmarks and the comparison
// command both call it.
func RawCycle(lock, claim string, lifetime time.Duration) error {
	data := []byte(claim)
	fd, err := unix.Open(claim, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, data); err != nil {
		return err
	}
	if err := setExpiry(fd, lifetime); err != nil {
		return err
	}
	if err := unix.Link(claim, lock); err != nil {
		unix.Unlink(claim)
		return err
	}
	if err := rawCheck(lock, data); err != nil {
		return err
	}
	if err := unix.Unlink(lock); err != nil {
		return err
	}
	return unix.Unlink(claim)
}

// setExpiry sets the times of fd's file to now plus lifetime with one
// utimensat, whose NULL path means the descriptor's file.
func setExpiry(fd int, lifetime time.Duration) error {
	ts := unix.NsecToTimespec(time.Now().Add(lifetime).UnixNano())
	times := [2]unix.Timespec{ts, ts}
	if _, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times[0])), 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// rawCheck reads the lock file through a descriptor of its own and
// compares its contents with the claim's.
func rawCheck(lock string, want []byte) error {
	fd, err := unix.Open(lock, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], want) {
		return errors.New("raw: the lock file is not our claim")
	}
	return nil
}

// RawClaim returns a claim name for lock in flufl.lock's format, with a
// fixed random part: the baseline pays for no random numbers.
func RawClaim(lock string) string {
	return lock + "|host|" + strconv.Itoa(unix.Getpid()) + "|1234567890123456789"
}
