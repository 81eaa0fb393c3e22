package main

import "syscall"

// setDeathSignal makes the command get sig when nfsflock dies, or rather,
// on Linux, when the thread that starts it ends (see job.run).
func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) { attr.Pdeathsig = sig }
