package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// Past the slop yet not breakable (a flufl.lock lock file that settles
// after its late link, or a filesystem clock behind this host's), the
// words say so, not "breakable in 0.0 s" (helper 55).
func TestExpiryWords(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	slop := 10 * time.Second
	for _, tt := range []struct {
		st   flock.Status
		want string
	}{
		{flock.Status{At: at, Expiry: at.Add(29 * time.Second)}, "expires in 29"},
		{flock.Status{At: at, Expiry: at.Add(-12 * time.Second), Expired: true, Breakable: true}, "expired 12 s ago; breakable"},
		{flock.Status{At: at, Expiry: at.Add(-1200 * time.Millisecond), Expired: true}, "breakable in 8.8 s, after the clock slop"},
		{flock.Status{At: at, Expiry: at.Add(-12 * time.Second), Expired: true}, "not breakable yet: it changed moments ago"},
	} {
		if got := expiryWords(tt.st, slop); !strings.Contains(got, tt.want) {
			t.Errorf("expiryWords(expiry %v before, expired %v, breakable %v) = %q; want it to say %q",
				tt.st.At.Sub(tt.st.Expiry), tt.st.Expired, tt.st.Breakable, got, tt.want)
		}
	}
}

// Only fencing needs hard links or renames that do not replace: the words
// for ErrLinkUnsupported say so, rather than that nfsflock needs links
// (the no-link review: nfsflock works there without --fencing).
func TestLinkUnsupportedWords(t *testing.T) {
	got := explain("/x/app.lck", flock.ErrLinkUnsupported)
	if !strings.Contains(got, "--fencing needs") {
		t.Errorf("explain(ErrLinkUnsupported) = %q; want it to say that --fencing needs them", got)
	}
}
