// Package compare measures nfsflock against other lock libraries and
// against the bare system calls of its protocol. It is a module of its
// own so that the library's go.mod names none of them.
//
//	cd compare && go test -run '^$' -bench . -count 6 | tee new.txt
package compare
