//go:build unix

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// decodeWait reads every system's codes for a stop and a continue, and a
// stop by SIGSTOP is a stop; a stop reports the signal that stopped.
func TestDecodeWait(t *testing.T) {
	stop := func(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(uint32(sig)<<8 | 0x7f) }
	tests := []struct {
		name   string
		ws     unix.WaitStatus
		event  waitEvent
		status int
	}{
		{"exit 0", 0, waitEnded, 0},
		{"exit 3", 3 << 8, waitEnded, 3},
		{"exit 255", 255 << 8, waitEnded, 255},
		{"SIGTERM", unix.WaitStatus(unix.SIGTERM), waitEnded, 128 + int(unix.SIGTERM)},
		{"SIGKILL", unix.WaitStatus(unix.SIGKILL), waitEnded, 128 + int(unix.SIGKILL)},
		{"stopped by SIGSTOP", stop(unix.SIGSTOP), waitStopped, int(unix.SIGSTOP)},
		{"stopped by SIGTSTP", stop(unix.SIGTSTP), waitStopped, int(unix.SIGTSTP)},
		{"stopped by SIGTTIN", stop(unix.SIGTTIN), waitStopped, int(unix.SIGTTIN)},
		{"continued, 0xffff", 0xffff, waitContinued, 0},
		{"continued, SIGCONT", unix.WaitStatus(unix.SIGCONT), waitContinued, 0},
		{"continued, stop code of SIGCONT", stop(unix.SIGCONT), waitContinued, 0},
	}
	for _, tt := range tests {
		if event, status := decodeWait(tt.ws); event != tt.event || status != tt.status {
			t.Errorf("%s: decodeWait(%#x) = %v, %d; want %v, %d", tt.name, uint32(tt.ws), event, status, tt.event, tt.status)
		}
	}
}
