package flock

// Mutants put back, one at a time, a defect that the protocol once had or
// that its peers have, so that the simulation (sim_test.go) can show that
// it finds each. Only tests set mutant; in production it is always "".
var mutant string

// A mutantInfo says what a mutant puts back, and whether the simulation
// is expected to find it within its CI budget. Those it is not are staged
// by regression tests instead (docs/RELIABILITY.md names them, and
// TestStagingFindsMutants runs each with its mutant on): defects
// whose only effect in the model is a move by a process past its own
// lease, which the simulation counts as the documented window rather than
// as a violation, and sweeps across pid namespaces, which the model reaches
// too rarely. breakers-no-relook and expiry-via-path guard windows that
// the time base narrowed (a breaker's or an acquirer's lease now ends, by
// the upper bound on the filesystem's clock, before anyone else may act on
// it), and the model reaches them too rarely for CI; their staging tests
// pause a process in that window through the fault seam.
type mutantInfo struct {
	what string
	sim  bool
}

// mutants names each mutant.
var mutants = map[string]mutantInfo{
	"naive-break":            {"a breaker unlinks the expired lock file, as flufl.lock does: no breakers' lock, no move aside, no check", true},
	"no-breakers-lock":       {"breakers do not take turns through the breakers' lock", true},
	"no-move-check":          {"a breaker removes whatever it moved aside, without checking it is the instance it judged", false},
	"release-no-look":        {"Release moves the lock file aside before looking whether it is ours, lease or not (the Release before the safety issue)", false},
	"release-no-lease":       {"Release moves the lock file even after its lease ran out", false},
	"refresh-no-look":        {"Refresh writes the expiry and reports success without looking at the lock file afterwards", true},
	"refresh-no-lease":       {"Refresh extends a lock whose lease already ran out", false},
	"expiry-via-path":        {"the expiry after linking is written through the lock path, not the claim's descriptor", false},
	"acquire-no-relook":      {"an acquisition counts as held without looking at the lock file after writing its expiry", true},
	"lost-rename-reply":      {"a lost reply to the rename aside is taken as 'nothing there', leaving the moved file behind", true},
	"sweep-any-pid-ns":       {"sweeps remove dead-looking claims of any pid namespace, without the namespace tag's proof", false},
	"no-link-settle":         {"a flufl.lock lock file linked past its expiry is broken at once, before its holder times it again", false},
	"no-time-base":           {"expiries are written and judged by each host's own clock, not the filesystem's", true},
	"breakers-no-relook":     {"a breaker moves the lock file without checking its breakers' lock is still its own", false},
	"recheck-unbounded":      {"a breaker moves the lock file however long its last reads of it took, so that they may show an instance released and retaken meanwhile", false},
	"quick-look-by-name":     {"on a local disk, a look by one Lstat takes any regular file at the lock path (or moved aside) for our own lock file", true},
	"no-cache-wait":          {"without hard links, a breaker moves the lock file without first waiting out the attribute cache", true},
	"breakers-put-back":      {"a move aside at the breakers' path that took another's file than the one judged (a live breaker's) puts it back, as before commit cc3d6b9, so that it may return after its breaker's reads of the lock file, with another breaker at work since", false},
	"breakers-move-aside":    {"another's breakers' lock is removed by a plain move aside, with no file of the remover's put in its place, which leaves the path free under a live breaker whose file it took (as before cc0d523 where names are swapped, and before c7ffa50 elsewhere)", false},
	"swap-back":              {"a remover that took out a breakers' lock it must not remove swaps the two back (as at cc0d523), which pushes out whatever stands at the breakers' path by then and puts back a file that stands in for it by its expiry alone", false},
	"swap-no-relook":         {"a remover swaps on its judgment of the breakers' lock, made before it made the file it swaps in, without looking again: a live breaker's file linked in meanwhile comes out, and the remover's, left to stand in for it, blocks breakers until it expires", false},
	"give-up-marked-by-move": {"a remover that took the breakers' lock by its swap marks its file long expired and gives it up at once, by a look and a move aside: another may take the breakers' lock from the marked file between the two, so that the move takes a live breaker's", false},
	"swap-no-yield":          {"a remover holding the breakers' lock through its swapped-in file, which it finds another remover swapped out, leaves it unmarked: that remover leaves its own standing in for it, and breakers wait until that expires", false},
	"swap-past-lease":        {"a removal of another's breakers' lock swaps its own in however long it paused since making its own, which others may have broken meanwhile", false},
	"dead-swapper-breakable": {"the breakers' lock a remover swaps in names its maker as a breaker's does, so that one left by a remover that died just after its swap is broken at once by proof of its death, under the breaker whose file it took out", false},
	"far-breakers-at-once":   {"a breakers' lock whose expiry lies further ahead than a breaker writes is broken at once as planted, though a live breaker whose clock runs ahead of the filesystem's writes such expiries", false},
	"no-times-confirm":       {"attributes read just after a file's times were set are taken as they come, though sshfs may show the times from before (a listing's cache), as before 759164b", true},
	"no-cut-allowance":       {"a whole-second expiry is judged as read, though it may have been cut by up to a second that the clock slop was not set to cover: by this host's mount (sshfs), or by the server where the holder's mount shows the times it set (simulation seed 8100000399 finds it; seeds 1 to 20000 do not)", false},
	"retime-past-new-lease":  {"a refresh to a shorter lifetime sets the lock file's times again, after a stale read, under the old lease, though the new one stands on disk (759164b)", false},
}

// mutated reports whether the named mutant is on.
func mutated(name string) bool { return mutant != "" && mutant == name }
