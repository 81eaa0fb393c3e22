package flock

import "fmt"

// State is what can be inferred about a lock file, as in flufl.lock's
// LockState. Where hosts share a filesystem, some states cannot be told
// apart; the policy on what to do about them is the caller's.
type State int

const (
	// Unlocked: there is no lock file.
	Unlocked State = iota + 1
	// Ours: this Lock holds the lock and it has not expired.
	Ours
	// OursExpired: this Lock holds the lock but its lifetime has passed;
	// another process may break it once the clock slop has passed too.
	OursExpired
	// Stale: the holder's hostname is ours and no process with its pid
	// runs here.
	Stale
	// TheirsExpired: a running process on this host holds it, and its
	// lifetime has passed.
	TheirsExpired
	// Unknown: another host holds it, or a running process on this host
	// holds it and it has not expired, or its contents cannot be parsed.
	Unknown
)

var stateNames = [...]string{
	Unlocked:      "unlocked",
	Ours:          "ours",
	OursExpired:   "ours_expired",
	Stale:         "stale",
	TheirsExpired: "theirs_expired",
	Unknown:       "unknown",
}

// String returns flufl.lock's name for the state, such as "ours_expired".
func (s State) String() string {
	if s >= Unlocked && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Details are what a lock file says of its holder.
type Details struct {
	Hostname string // the holder's host, as it named itself
	PID      int    // the holder's process id on that host
	LockFile string // the lock path, as the holder named it
}
