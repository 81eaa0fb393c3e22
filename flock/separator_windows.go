package flock

// defaultSeparator is flufl.lock's separator on Windows, where "|" may
// not appear in a file name.
const defaultSeparator = "^"
