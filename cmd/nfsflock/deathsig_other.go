//go:build unix && !linux && !freebsd

package main

import "syscall"

// setDeathSignal does nothing: this system has no parent-death signal, and
// a command outlives an nfsflock that dies without stopping it.
func setDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}
