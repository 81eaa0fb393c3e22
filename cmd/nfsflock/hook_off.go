//go:build unix && !nfsflocktest

package main

// guardDelay does nothing: see hook_on.go.
func guardDelay() {}
