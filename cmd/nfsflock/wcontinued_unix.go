//go:build unix && !netbsd

package main

import "golang.org/x/sys/unix"

// wcontinued has wait4 report a stopped command that was continued.
const wcontinued = unix.WCONTINUED
