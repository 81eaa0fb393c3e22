// Package posix holds the filesystem primitives of the lock on POSIX
// systems: exclusive creation of a claim, link(2), and reading a file's
// contents and attributes through one descriptor without following
// symlinks or blocking on a FIFO. It knows nothing of lifetimes or breaking.
//
// Every failure is an [*fs.PathError] or, for calls on two paths, an
// [*os.LinkError]. The package is empty on Windows (see flock/windows) and AIX.
package posix
