//go:build unix

package flock_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nfsflock/nfsflock/flock"
)

// FuzzHostileFiles: whatever bytes an attacker sharing the directory
// writes to the lock file and to the breakers' lock, and whatever their
// expiry, a Lock's reads, attempt and release never panic or hang, never
// remove or change a file that is not the lock's (the attacker's decoys,
// named by the contents or not, beside the lock or outside its
// directory), take an expired lock, leave a lock in its lifetime alone,
// and leave nothing of their own behind; and what they report quotes the
// attacker's bytes rather than pass control characters on.
//
// The seeds run with plain go test; go test -fuzz FuzzHostileFiles
// ./flock/ explores further.
func FuzzHostileFiles(f *testing.F) {
	dead := strconv.Itoa(deadPID(f))
	host, err := os.Hostname()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		lock, breakers string
		expired        bool
	}{
		{"", "", true},
		{"DIR/app.lck|otherhost|1|1", "", false},
		{"DIR/app.lck|otherhost|1|1", "", true},
		{"DIR/app.lck|" + host + "|" + dead + "|1", "", false},
		{"DIR/app.lck|" + host + "|" + dead + "|1", "DIR/app.lck|" + host + "|" + dead + "|2", true},
		{"DIR/../outside", "DIR/victim", true},
		{"/etc/passwd", "\x1b[2J\x00\xff", true},
		{"app.lck|h\n|1|1", "app.lck|h|1|1\r\n", false},
		{"DIR/app.lck^h^1^1", "DIR/app.lck|h|1|1 swap", true},
		{"DIR/app.lck|h|99999999999999999999|1", "", true},
		{string(bytes.Repeat([]byte("A|"), 5000)), "", true},
	} {
		f.Add([]byte(s.lock), []byte(s.breakers), s.expired, uint8(0))
		f.Add([]byte(s.lock), []byte(s.breakers), s.expired, uint8(7))
	}
	f.Fuzz(func(t *testing.T, lockContents, breakersContents []byte, expired bool, mode uint8) {
		root := t.TempDir()
		dir := filepath.Join(root, "d")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "app.lck")
		expand := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("DIR"), []byte(dir)) }
		lockContents, breakersContents = expand(lockContents), expand(breakersContents)

		// Decoys: files an honest Lock never removes. Some are shaped like
		// claims of this lock (another host's, a flufl.lock claim of a dead
		// process here), and the contents may name any of them.
		decoys := map[string][]byte{
			filepath.Join(root, "outside"):                    []byte("outside"),
			filepath.Join(dir, "victim"):                      []byte("victim"),
			filepath.Join(dir, "app.lck|otherhost|1|1"):       []byte("decoy 1"),
			filepath.Join(dir, "app.lck|"+host+"|"+dead+"|1"): []byte("decoy 2"),
			filepath.Join(dir, "app.lck|h|1|1"):               []byte("decoy 3"),
			filepath.Join(dir, "app.lck.fence"):               []byte("decoy 4"),
		}
		for name, b := range decoys {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		// The lock file: expired an hour ago, or expiring in a minute; the
		// breakers' lock, when mode says so, likewise.
		expiry := time.Now().Add(time.Minute)
		if expired {
			expiry = time.Now().Add(-time.Hour)
		}
		write := func(name string, b []byte, at time.Time) {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(name, at, at); err != nil {
				t.Fatal(err)
			}
		}
		write(path, lockContents, expiry)
		planted := mode&1 != 0
		if planted {
			at := time.Now().Add(-time.Hour)
			if mode&2 != 0 {
				at = time.Now().Add(time.Minute)
			}
			write(path+".break", breakersContents, at)
		}
		before, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}

		opts := []flock.Option{flock.WithLifetime(time.Minute), flock.WithClockSlop(time.Second)}
		if mode&4 != 0 {
			opts = append(opts, flock.WithDeadOwnerBreak())
		}
		l, err := flock.New(path, opts...)
		if err != nil {
			t.Fatalf("New(%q) = %v", path, err)
		}
		defer l.Close()

		quoted := func(what string, err error) {
			if err != nil && !printable(err.Error()) {
				t.Errorf("%s: error %q passes control characters on", what, err.Error())
			}
		}
		st, err := l.Inspect()
		quoted("Inspect", err)
		if err == nil && (st.Ours || !st.Exists) {
			t.Errorf("Inspect() = %+v; want another's lock file", st)
		}
		_, err = l.Details()
		quoted("Details", err)

		got, err := l.TryAcquire()
		quoted("TryAcquire", err)
		// A lock file that expired an hour ago is taken, whatever it says,
		// unless a breakers' lock planted in its lifetime holds breakers off
		// (which a breaker outwaits; TryAcquire does not wait).
		if expired && !(planted && mode&2 != 0) && !got {
			t.Errorf("TryAcquire() = false, %v over a lock file expired an hour ago", err)
		}
		if !expired && mode&4 == 0 && got {
			t.Errorf("TryAcquire() = true over another's lock file in its lifetime")
		}
		if got {
			if b, err := os.ReadFile(path); err != nil || string(b) != l.ClaimPath() {
				t.Errorf("held, the lock file holds %q, %v; want %q", b, err, l.ClaimPath())
			}
			if err := l.Release(); err != nil {
				t.Errorf("Release() = %v", err)
			}
		} else if mode&4 == 0 || expired {
			// Not taken: the attacker's lock file is as it was.
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("the lock file not taken was changed: %v, %v", after, err)
			} else if b, _ := os.ReadFile(path); !bytes.Equal(b, lockContents) {
				t.Errorf("the lock file not taken now holds %q", b)
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}

		for name, want := range decoys {
			if b, err := os.ReadFile(name); err != nil || !bytes.Equal(b, want) {
				t.Errorf("decoy %s: %q, %v; want it untouched", name, b, err)
			}
		}
		// Nothing of ours is left: only the decoys, and the attacker's
		// lock file and breakers' lock where they still stand.
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			name := filepath.Join(dir, e.Name())
			if _, ok := decoys[name]; ok || name == path && !got || name == path+".break" && planted {
				continue
			}
			t.Errorf("left behind: %q", e.Name())
		}
		if got && slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == "app.lck" }) {
			t.Errorf("the lock file is still there after Release")
		}
	})
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return false
		}
	}
	return true
}

// FuzzHostileFenceHint: whatever bytes are written over the fencing hint
// between two acquisitions, the second either hands out a token larger
// than the first's or fails with ErrFencing; it never goes back, and
// never touches a file the hint names.
func FuzzHostileFenceHint(f *testing.F) {
	for _, s := range []string{"", "0", "1", "2\n", "18446744073709551615", "99999999999999999999", "3\napp.lck|h|1|1\n",
		"1\n../../outside\n", " 2 ", "+2", "02", "\x00", string(bytes.Repeat([]byte("9"), 600))} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(5))
	}
	f.Fuzz(func(t *testing.T, hint []byte, rounds uint8) {
		root := t.TempDir()
		dir := filepath.Join(root, "d")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "app.lck")
		decoys := map[string][]byte{
			filepath.Join(root, "outside"):      []byte("outside"),
			filepath.Join(dir, "app.lck|h|1|1"): []byte("decoy"),
		}
		for name, b := range decoys {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := flock.New(path, flock.WithFencing(), flock.WithLifetime(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var last uint64
		for range 1 + rounds%8 {
			if err := l.Acquire(context.Background()); err != nil {
				t.Fatalf("Acquire() = %v", err)
			}
			last, _ = l.Token()
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path+".fence", hint, 0o644); err != nil {
			t.Fatal(err)
		}
		err = l.Acquire(context.Background())
		switch tok, ok := l.Token(); {
		case err != nil && !errors.Is(err, flock.ErrFencing):
			t.Fatalf("Acquire() after a hint of %q = %v; want a token or ErrFencing", hint, err)
		case err != nil && !printable(err.Error()):
			t.Errorf("Acquire() = %q passes control characters on", err.Error())
		case err == nil && (!ok || tok <= last):
			t.Errorf("after a hint of %q, token %d, %v; the one before was %d", hint, tok, ok, last)
		case err == nil:
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		}
		for name, want := range decoys {
			if b, err := os.ReadFile(name); err != nil || !bytes.Equal(b, want) {
				t.Errorf("decoy %s: %q, %v; want it untouched", name, b, err)
			}
		}
	})
}
