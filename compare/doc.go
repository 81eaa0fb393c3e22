// Package compare measures nfsflock against other lock libraries and
// against the bare system calls of its protocol ([RawCycle]). It is a
// module of its own so that the library's go.mod names none of them, and
// it runs on Linux only.
//
// The comparison of issue 10, all peers side by side with real processes
// (docs/BENCHMARKS.md shows a run):
//
//	./install-peers.sh      # proper-lockfile from npm, into npm/node_modules
//	go run ./cmd/compare    # the table, out/results.md and out/handoff.svg
//
// The in-process benchmarks, among them the floors of nfsflock's own rules
// ([SafeCycle], [KeptClaim]): the system calls its safety steps require,
// issued raw, which show how far targets 2 and 3 lie within reach
// (docs/BENCHMARKS.md, What the rules cost):
//
//	go test -run '^$' -bench . -count 6 | tee new.txt
package compare
