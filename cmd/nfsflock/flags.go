package main

import (
	"errors"
	"flag"
	"math"
	"strconv"
	"strings"
	"time"
)

// Every verb reads its flags with one parser, the way getopt_long(3) and
// so flock(1) read them: -n, a value after a one-letter flag or joined to
// it (-w 5, -w5), one-letter flags run together (-xn), --name, and
// --name VALUE or --name=VALUE. A long name with one dash (-json), as Go's
// flag package takes it, is read as that long name. Flags come before
// LOCKFILE, and -- ends them. Messages name a flag as it was typed.

// errVersion is returned by a parse that met -V or --version.
var errVersion = errors.New("version requested")

// A flagSpec is one flag under all its names.
type flagSpec struct {
	short string   // its one-letter name, or ""
	long  []string // its long names
	arg   string   // what its value is, for messages ("DURATION"); "" if it takes none
	// set is given the flag as typed ("-w", "--timeout") and its value.
	set func(typed, value string) error
}

// A flagSet is the flags of one verb.
type flagSet struct {
	verb  string
	specs []*flagSpec
}

// newFlagSet returns the flags of verb, with -h, --help, -V and
// --version, which every verb takes.
func newFlagSet(verb string) *flagSet {
	f := &flagSet{verb: verb}
	f.add(&flagSpec{short: "h", long: []string{"help"}, set: func(string, string) error { return flag.ErrHelp }})
	f.add(&flagSpec{short: "V", long: []string{"version"}, set: func(string, string) error { return errVersion }})
	return f
}

func (f *flagSet) add(s *flagSpec) { f.specs = append(f.specs, s) }

// boolVar defines a flag that takes no value and sets *p.
func (f *flagSet) boolVar(p *bool, short string, long ...string) {
	f.add(&flagSpec{short: short, long: long, set: func(string, string) error { *p = true; return nil }})
}

// refuse defines a flag of flock(1) that nfsflock does not take, whose
// use is a usage error saying why.
func (f *flagSet) refuse(why string, short string, long ...string) {
	f.add(&flagSpec{short: short, long: long, set: func(typed, _ string) error { return usagef("%s: %s", typed, why) }})
}

// A durationValue is a duration flag's value and how it was typed.
type durationValue struct {
	d     time.Duration
	typed string // "-w 0", "--timeout=5"; "" when not given
}

// durationVar defines a flag whose value is a DURATION no longer than
// maxDuration, and greater than 0 if positive, or else 0 or more.
func (f *flagSet) durationVar(v *durationValue, value time.Duration, positive bool, short string, long ...string) {
	v.d = value
	f.add(&flagSpec{short: short, long: long, arg: "DURATION", set: func(typed, s string) error {
		d, ok := parseDuration(s)
		if !ok || (positive && d == 0) {
			return badDuration(typed, s, positive)
		}
		v.d, v.typed = d, typed+" "+shellWord(s)
		return nil
	}})
}

// exitStatusVar defines a flag whose value is an exit status, 0 to 255.
func (f *flagSet) exitStatusVar(p *int, value int, short string, long ...string) {
	*p = value
	f.add(&flagSpec{short: short, long: long, arg: "N", set: func(typed, s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return usagef("%s %s: want an exit status from 0 to 255", typed, shellWord(s))
		}
		*p = n
		return nil
	}})
}

func (f *flagSet) lookup(name string, long bool) *flagSpec {
	for _, s := range f.specs {
		if !long && s.short == name {
			return s
		}
		for _, l := range s.long {
			if long && l == name {
				return s
			}
		}
	}
	return nil
}

// parse parses the flags at the front of args and returns the arguments
// after them. ended reports that a -- ended the flags, so that nothing
// after it is a flag. It returns flag.ErrHelp for -h and errVersion for
// -V, and a usageError for a mistake.
func (f *flagSet) parse(args []string) (rest []string, ended bool, err error) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return args[i+1:], true, nil
		case !looksLikeFlag(arg):
			return args[i:], false, nil
		}
		// next takes the argument after arg as a value.
		next := func(typed string, s *flagSpec) (string, error) {
			if i+1 >= len(args) {
				return "", usagef("%s needs a %s after it", typed, s.arg)
			}
			i++
			return args[i], nil
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
		if strings.HasPrefix(arg, "--") || (len(name) > 1 && f.lookup(name, true) != nil) {
			typed, _, _ := strings.Cut(arg, "=")
			s := f.lookup(name, true)
			switch {
			case s == nil:
				return nil, false, usagef("unknown flag %s", typed)
			case s.arg == "" && hasValue:
				return nil, false, usagef("%s takes no value", typed)
			case s.arg != "" && !hasValue:
				if value, err = next(typed, s); err != nil {
					return nil, false, err
				}
			}
			if err := s.set(typed, value); err != nil {
				return nil, false, err
			}
			continue
		}
		// One-letter flags, maybe several run together, the last of
		// which may take a value: -n, -xn, -w5, -nw 5.
		for j := 1; j < len(arg); j++ {
			typed := "-" + arg[j:j+1]
			s := f.lookup(arg[j:j+1], false)
			if s == nil || arg[j] >= 0x80 {
				if j > 1 {
					return nil, false, usagef("unknown flag %s in %s", typed, arg)
				}
				return nil, false, usagef("unknown flag %s", arg)
			}
			if s.arg == "" {
				if err := s.set(typed, ""); err != nil {
					return nil, false, err
				}
				continue
			}
			value := arg[j+1:]
			if j == 1 {
				value = strings.TrimPrefix(value, "=") // -w=5, as Go's flag package takes it
			}
			if value == "" {
				if value, err = next(typed, s); err != nil {
					return nil, false, err
				}
			}
			if err := s.set(typed, value); err != nil {
				return nil, false, err
			}
			break
		}
	}
	return nil, false, nil
}

// looksLikeFlag reports whether arg would be a flag before LOCKFILE.
func looksLikeFlag(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

// shellWord returns s as a user would type it in a message: quoted if it
// is empty or holds spaces or characters that do not print.
func shellWord(s string) string {
	if s == "" || strings.ContainsAny(s, " \t'\"") || printable(s) != s {
		return strconv.Quote(s)
	}
	return s
}

// maxDuration is the longest lifetime, timeout, clock slop or grace period
// nfsflock takes: 100 years, the bound of flock.MaxLifetime. Longer ones
// would overflow the arithmetic of expiry times and deadlines.
const maxDuration = 100 * 365 * 24 * time.Hour

// parseDuration parses a DURATION: a number of seconds ("2", "0.5", as
// flock(1) takes them) or a Go duration ("500ms"), from 0 to maxDuration.
func parseDuration(s string) (time.Duration, bool) {
	if strings.HasPrefix(s, "-") {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || secs < 0 || secs > maxDuration.Seconds() {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxDuration {
		return 0, false
	}
	return d, true
}

// badDuration is the one message for a DURATION that nfsflock cannot take:
// unparsable, negative, NaN, too long, or 0 where it must be positive.
func badDuration(typed, value string, positive bool) error {
	low := "0 or more"
	if positive {
		low = "above 0"
	}
	return usagef("%s %s: want a duration %s and at most 876000h (100 years), in seconds (2, 0.5) or as a Go duration (500ms, 1m30s)",
		typed, shellWord(value), low)
}
