package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// gateStopped reports whether the gate pid is stopped, as /proc tells;
// where it cannot tell, it reports true.
func gateStopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) == 0 || f[0] == "T"
}
