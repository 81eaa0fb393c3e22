//go:build unix

package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// survivePipes keeps nfsflock alive when it writes to a standard output
// or standard error whose reader has gone, as in ( nfsflock --verbose L
// cmd ) 2>&1 | true. Go's runtime ends a program by SIGPIPE for such a
// write to descriptor 1 or 2 unless the program catches SIGPIPE: nfsflock
// would die holding the lock, before or while its command runs, and leave
// the lock file behind. Caught, the signal is dropped, and the write fails
// with EPIPE, which nfsflock's messages ignore.
//
// It catches the signal rather than ignoring it: a caught signal is reset
// to its default in the command when nfsflock starts it, an ignored one
// stays ignored there, and a command such as yes in nfsflock L yes | head
// must still end by SIGPIPE. (Go's runtime takes SIGPIPE over even where
// nfsflock was started ignoring it, and the command gets it at its default
// then too: only SIGHUP and SIGINT stay ignored, see startRelay.)
func survivePipes() {
	if signal.Ignored(unix.SIGPIPE) {
		return
	}
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
}
