package flock

// Mutants put back, one at a time, a defect that the protocol once had or
// that its peers have, so that the simulation (sim_test.go) can show that
// it finds each. Only tests set mutant; in production it is always "".
var mutant string

// mutants names each mutant and the defect it puts back.
var mutants = map[string]string{
	"naive-break":        "a breaker unlinks the expired lock file, as flufl.lock does: no breakers' lock, no move aside, no check",
	"no-breakers-lock":   "breakers do not take turns through the breakers' lock",
	"no-move-check":      "a breaker removes whatever it moved aside, without checking it is the instance it judged",
	"release-no-look":    "Release moves the lock file aside before looking whether it is ours, lease or not (the Release before the safety issue)",
	"release-no-lease":   "Release moves the lock file even after its lease ran out",
	"refresh-no-look":    "Refresh writes the expiry and reports success without looking at the lock file afterwards",
	"refresh-no-lease":   "Refresh extends a lock whose lease already ran out",
	"expiry-via-path":    "the expiry after linking is written through the lock path, not the claim's descriptor",
	"acquire-no-relook":  "an acquisition counts as held without looking at the lock file after writing its expiry",
	"contents-only":      "a lock file is judged ours by its contents alone, never by identity",
	"lost-rename-reply":  "a lost reply to the rename aside is taken as 'nothing there', leaving the moved file behind",
	"sweep-any-pid-ns":   "sweeps remove dead-looking claims of any pid namespace, without the namespace tag's proof",
	"breakers-no-relook": "a breaker moves the lock file without checking its breakers' lock is still its own",
}

// mutated reports whether the named mutant is on.
func mutated(name string) bool { return mutant != "" && mutant == name }
