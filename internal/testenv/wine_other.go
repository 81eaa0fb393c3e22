//go:build !windows

package testenv

// Wine reports false: Wine runs Windows programs only.
func Wine() bool { return false }
