//go:build !windows

package flock

// defaultSeparator is flufl.lock's separator outside Windows.
const defaultSeparator = "|"
