// Package claim names claim files and reads lock-file contents, which are
// untrusted input: anything on the shared filesystem may have written them.
//
// A claim is the file a process links to the lock file. Its name and its
// contents are the same string, lockPath+sep+host+sep+pid+sep+random, the
// byte-exact format of Python's flufl.lock.
package claim

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// MaxContents bounds how many bytes of a lock file are read. A claim is a
// path plus a hostname and two numbers; anything longer is not one.
const MaxContents = 8192

// Separators are the separators flufl.lock uses: '|' on POSIX and '^' on
// Windows. Parsing accepts both, so that POSIX and Windows clients of one
// share understand each other.
var Separators = []string{"|", "^"}

// The random field of a claim that this package names is RandomDigits
// decimal digits: a zero-padded random number below 2^63 (flufl.lock's
// whole field is such a number, at most 19 digits), then TagDigits digits
// of the writer's namespace tag. flufl.lock never reads the field, and no
// claim it writes is that long, so a field of exactly this length proves
// a claim (or other side file) of ours, and says where its writer ran.
const (
	randomDigits = 19
	TagDigits    = 15
	RandomDigits = randomDigits + TagDigits
	// MaxTag is the largest namespace tag.
	MaxTag = 999_999_999_999_999
)

// Name returns the claim string (and so the claim file's path) for a lock.
// tag says which boot and pid namespace the writer runs in (see
// [TagOf]); 0 means unknown. random must be below 2^63 and tag at most
// MaxTag.
func Name(lockPath, sep, host string, pid int, random, tag uint64) string {
	return lockPath + sep + host + sep + strconv.Itoa(pid) + sep + fmt.Sprintf("%0*d%0*d", randomDigits, random, TagDigits, tag%(MaxTag+1))
}

// TagOf returns the namespace tag in a claim's name or contents, and
// false if it carries none (flufl.lock's claims never do) or it is 0.
func TagOf(name string, sep string) (uint64, bool) {
	d, ok := Parse([]byte(name), sep)
	if !ok {
		return 0, false
	}
	field := name[strings.LastIndex(name, d.Sep)+len(d.Sep):]
	if len(field) != RandomDigits {
		return 0, false
	}
	tag, err := strconv.ParseUint(field[randomDigits:], 10, 64)
	if err != nil || tag == 0 {
		return 0, false
	}
	return tag, true
}

// Details are the fields of a parsed claim.
type Details struct {
	LockFile string // the lock path as its holder named it
	Hostname string
	PID      int
	Sep      string // the separator that split it
}

// Parse reads the contents of a lock file or the name of a claim file. Like
// flufl.lock it strips surrounding white space and needs exactly four fields.
// prefer is tried first; the other separators after it.
func Parse(contents []byte, prefer string) (Details, bool) {
	s := string(bytes.TrimSpace(contents))
	if s == "" || strings.ContainsRune(s, 0) {
		return Details{}, false
	}
	try := func(sep string) (Details, bool) {
		f := strings.Split(s, sep)
		if len(f) != 4 || f[0] == "" || f[1] == "" {
			return Details{}, false
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil || pid <= 0 || !isDigits(f[2]) || !isDigits(f[3]) {
			return Details{}, false
		}
		return Details{LockFile: f[0], Hostname: f[1], PID: pid, Sep: sep}, true
	}
	if d, ok := try(prefer); ok {
		return d, true
	}
	for _, sep := range Separators {
		if sep == prefer {
			continue
		}
		if d, ok := try(sep); ok {
			return d, true
		}
	}
	return Details{}, false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Removable returns the base name of the claim file that contents name, if
// it is one that a process sharing the lock whose base name is lockBase may
// remove: the last path element of the contents, starting with
// lockBase+sep and parsing as a claim with that separator (sep, or one of
// Separators). The caller joins the name to the lock's own directory, so a
// hostile lock file can never direct a removal elsewhere.
func Removable(contents []byte, lockBase, sep string) (string, bool) {
	s := string(bytes.TrimSpace(contents))
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	return s, IsClaimOf(s, lockBase, sep)
}

// IsClaimOf reports whether name, a base name, has the shape of a claim (or
// of a lock moved aside) for the lock file whose base name is lockBase,
// with the separator sep or one of Separators.
func IsClaimOf(name, lockBase, sep string) bool {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return false
	}
	for _, sep := range append([]string{sep}, Separators...) {
		if sep == "" || !strings.HasPrefix(name, lockBase+sep) {
			continue
		}
		if d, ok := Parse([]byte(name), sep); ok && d.Sep == sep && d.LockFile == lockBase {
			return true
		}
	}
	return false
}
