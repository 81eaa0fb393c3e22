//go:build unix

package main

import "golang.org/x/sys/unix"

// waitOptions has wait4 report the command's stops and continues too.
const waitOptions = unix.WUNTRACED | wcontinued

// A waitEvent is what one wait status says of the command.
type waitEvent int

const (
	waitOther     waitEvent = iota // nothing that nfsflock acts on
	waitEnded                      // it exited, or a signal killed it
	waitStopped                    // a signal stopped it
	waitContinued                  // SIGCONT continued it
)

// decodeWait reads a wait status, and for a command that ended, its exit
// status as nfsflock reports it: 128+N for signal N; for a stop, the
// number of the signal that stopped it.
//
// It decodes stops and continues itself: x/sys's Stopped misses a stop by
// SIGSTOP on the BSDs and macOS, and its Continued there would read
// FreeBSD's continue as a death by SIGCONT. Each system has its own code
// for "continued": 0xffff (Linux, OpenBSD, NetBSD, Solaris), the number of
// SIGCONT (FreeBSD, older macOS), a stop by SIGCONT (newer macOS). None of
// them can mean anything else, since SIGCONT neither stops nor kills, so
// all three are read as a continue everywhere.
func decodeWait(ws unix.WaitStatus) (waitEvent, int) {
	raw := uint32(ws)
	cont := uint32(unix.SIGCONT)
	switch {
	case raw&0xffff == 0xffff, raw == cont, raw&0xff == 0x7f && raw>>8&0xff == cont:
		return waitContinued, 0
	case raw&0xff == 0x7f:
		return waitStopped, int(raw >> 8 & 0xff)
	case ws.Exited():
		return waitEnded, ws.ExitStatus()
	case ws.Signaled():
		return waitEnded, exitSignalBase + int(ws.Signal())
	}
	return waitOther, 0
}
