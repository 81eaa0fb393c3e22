// Package windows holds the filesystem primitives of the lock on Windows:
// exclusive creation of a claim, publishing it at the lock path by a move
// that never replaces, and reading a file's contents and attributes
// through one handle without following a reparse point. It knows nothing
// of lifetimes or breaking; it mirrors [github.com/nfsflock/nfsflock/flock/posix].
//
// # Publishing
//
// A lock file must never be seen empty or half-written. CreateFile with
// CREATE_NEW at the lock path is atomic, but the file exists, empty,
// between the create and the write, and a reader that comes then (or
// finds it after the writer crashed) cannot tell whose it is. So the
// protocol writes its claim file completely ([CreateExclusive]) and then
// moves it to the lock path with [RenameNoReplace], MoveFileEx without
// MOVEFILE_REPLACE_EXISTING, which fails if anything is there and
// otherwise publishes complete contents in one step (on NTFS and SMB
// alike). [Link] (CreateHardLink) exists for symmetry with posix; the
// protocol does not call it on Windows.
//
// # Contention
//
// Windows refuses to open, move or delete a file while another process
// is deleting it (the name stays, "delete pending", until every handle is
// closed), and antivirus scanners and indexers hold new files open for a
// moment. These show as ERROR_SHARING_VIOLATION, ERROR_ACCESS_DENIED,
// ERROR_DELETE_PENDING or ERROR_LOCK_VIOLATION. Every primitive retries
// them with backoff (1 ms doubling to 100 ms) for about two seconds in
// all, and then returns the error: a real permission problem is reported,
// late, rather than waited on forever. Every handle this package opens
// shares read, write and delete access, so that it never causes the
// contention it tolerates.
//
// Every failure is an [*fs.PathError] or, for calls on two paths, an
// [*os.LinkError], wrapping a [syscall.Errno]: errors.Is(err,
// fs.ErrExist) and errors.Is(err, fs.ErrNotExist) work as with package os.
// The package is empty on other systems.
package windows
