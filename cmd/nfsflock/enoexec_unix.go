//go:build unix

package main

import (
	"errors"
	"syscall"
)

// shellFallback returns how to run prog, which the system refused to
// execute with err, the way execvp(3), and so flock(1), runs it: a file
// that the system does not take for a program (ENOEXEC: a script without
// a #! line) is run by /bin/sh, as /bin/sh prog ARGS... It reports false
// for any other error.
func shellFallback(prog string, argv []string, err error) (string, []string, bool) {
	if !errors.Is(err, syscall.ENOEXEC) {
		return "", nil, false
	}
	return shell, append([]string{shell, prog}, argv[1:]...), true
}
