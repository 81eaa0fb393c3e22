package main

// ownerBlocks says why this user may not break the lock at path. Windows
// has no sticky directories: the line shown while waiting forecasts
// nothing, and the timeout's message reports what flock met.
func ownerBlocks(path string) string { return "" }
