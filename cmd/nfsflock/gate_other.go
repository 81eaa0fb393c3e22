//go:build unix && !linux

package main

// tellsGate says that gateStopped cannot tell the gate from the command
// it became: nfsflock nudges it only until it reports ready.
const tellsGate = false

// gateStopped cannot tell here, and reports true: nfsflock continues a
// gate that may be stopped.
func gateStopped(pid int) bool { return true }
