package windows

import (
	"errors"
	"time"

	"golang.org/x/sys/windows"
)

// contentionBudget is how long a primitive retries contention in all.
const contentionBudget = 2 * time.Second

// contended reports whether err is what Windows says while another
// process deletes, creates or scans the file: brief, worth retrying.
func contended(err error) bool {
	var errno windows.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case windows.ERROR_SHARING_VIOLATION, windows.ERROR_ACCESS_DENIED,
		windows.ERROR_DELETE_PENDING, windows.ERROR_LOCK_VIOLATION:
		return true
	}
	return false
}

// retrying calls fn until it returns nil, an error that is not
// contention, or contention once the budget is spent.
func retrying(fn func() error) error {
	delay := time.Millisecond
	deadline := time.Now().Add(contentionBudget)
	for {
		err := fn()
		if err == nil || !contended(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}
