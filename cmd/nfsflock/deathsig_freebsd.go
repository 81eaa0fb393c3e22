package main

import "syscall"

// setDeathSignal makes the command get sig when nfsflock dies
// (procctl's PROC_PDEATHSIG_CTL).
func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) { attr.Pdeathsig = sig }
