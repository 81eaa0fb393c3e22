package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// tellsGate says that gateStopped tells the gate from the command it
// became: nfsflock may nudge it until its exec.
const tellsGate = true

// gateStopped reports whether the gate pid is stopped, and still the gate,
// not the command its exec made of it, as /proc tells; where it cannot
// tell, it reports true.
func gateStopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	if f := strings.Fields(string(b[i+1:])); len(f) > 0 && f[0] != "T" {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err != nil || bytes.Equal(cmdline, []byte(gateName+"\x00"))
}
