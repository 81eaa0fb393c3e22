package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
)

// parseCommandLine parses args as nfsflock does, without running anything.
func parseCommandLine(args []string) error {
	verb, rest := splitVerb(args)
	var err error
	switch verb {
	case "status":
		_, err = parseStatus(rest)
	case "break":
		_, err = parseBreak(rest)
	default:
		_, err = parseRun(rest)
	}
	return err
}

// Every verb reads its flags before LOCKFILE; for run, all after LOCKFILE
// is the command, and -- lets it begin with a dash. -c after LOCKFILE is
// flock(1)'s: its one COMMAND runs with sh -c.
func TestRunArgs(t *testing.T) {
	tests := []struct {
		args     []string
		path     string
		argv     []string
		nonblock string
	}{
		{[]string{"L", "true"}, "L", []string{"true"}, ""},
		{[]string{"-n", "L", "true"}, "L", []string{"true"}, "-n"},
		{[]string{"--nb", "L", "true"}, "L", []string{"true"}, "--nb"},
		{[]string{"-n", "L", "--", "true"}, "L", []string{"true"}, "-n"},
		{[]string{"L", "--", "-n"}, "L", []string{"-n"}, ""},
		{[]string{"--", "L", "-n"}, "L", []string{"-n"}, ""},
		{[]string{"-n", "--", "-L", "true"}, "-L", []string{"true"}, "-n"},
		{[]string{"-w", "0", "L", "true"}, "L", []string{"true"}, "-w 0"},
		{[]string{"-w0", "L", "true"}, "L", []string{"true"}, "-w 0"},
		{[]string{"--timeout=0", "L", "true"}, "L", []string{"true"}, "--timeout 0"},
		{[]string{"--wait", "0", "L", "true"}, "L", []string{"true"}, "--wait 0"},
		{[]string{"-xnw", "5", "L", "true"}, "L", []string{"true"}, "-n"},
		{[]string{"-x", "-o", "--exclusive", "--close", "-e", "L", "true"}, "L", []string{"true"}, ""},
		{[]string{"L", "--", "--", "x"}, "L", []string{"--", "x"}, ""},
		{[]string{"L", "sh", "-c", "exit 3", "-n", "--", "-w"}, "L", []string{"sh", "-c", "exit 3", "-n", "--", "-w"}, ""},
		{[]string{"L", "-"}, "L", []string{"-"}, ""},
		{[]string{"L", "-c", "echo a b"}, "L", []string{shell, "-c", "echo a b"}, ""},
		{[]string{"-n", "L", "--command", "x"}, "L", []string{shell, "-c", "x"}, "-n"},
		{[]string{"L", "--", "-c", "x"}, "L", []string{"-c", "x"}, ""},
	}
	for _, tt := range tests {
		o, err := parseRun(tt.args)
		if err != nil || o.path != tt.path || !slices.Equal(o.argv, tt.argv) || o.nonblock != tt.nonblock {
			t.Errorf("parseRun(%q) = path %q, argv %q, nonblock %q, %v; want %q, %q, %q, nil",
				tt.args, o.path, o.argv, o.nonblock, err, tt.path, tt.argv, tt.nonblock)
		}
	}
}

// Durations and exit statuses are read the same way under every name.
func TestRunValues(t *testing.T) {
	o, err := parseRun([]string{"-l5", "--timeout=1m", "-k", "0.5", "--clock-slop", "2", "-E", "3", "--dead-owner-break", "L", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if o.lifetime.d != 5*time.Second || o.timeout.d != time.Minute || o.grace.d != 500*time.Millisecond ||
		o.lock.slop.d != 2*time.Second || o.conflict != 3 || !o.lock.deadOwner {
		t.Errorf("parseRun = %+v; want -l 5s, -w 1m, -k 500ms, --clock-slop 2s, -E 3, --dead-owner-break", o)
	}
	if o, err := parseRun([]string{"-l", "0.1", "L", "true"}); err != nil || o.lifetime.d != minLifetime {
		t.Errorf("parseRun(-l 0.1 L true) = %+v, %v; want the shortest lifetime, 100ms, taken", o, err)
	}
	o, err = parseRun([]string{"L", "true"})
	if err != nil || o.lifetime.d != flock.DefaultLifetime || o.timeout.d != 0 || o.grace.d != defaultGrace ||
		o.lock.slop.d != flock.DefaultClockSlop || o.conflict != exitUnavailable || o.lock.deadOwner {
		t.Errorf("parseRun(L true) = %+v, %v; want the defaults", o, err)
	}
}

func TestStatusArgs(t *testing.T) {
	tests := []struct {
		args                     []string
		path                     string
		slop                     time.Duration
		asJSON, quiet, deadOwner bool
	}{
		{[]string{"L"}, "L", flock.DefaultClockSlop, false, false, false},
		{[]string{"--json", "L"}, "L", flock.DefaultClockSlop, true, false, false},
		{[]string{"-q", "L"}, "L", flock.DefaultClockSlop, false, true, false},
		{[]string{"--clock-slop", "2", "--json", "--dead-owner-break", "L"}, "L", 2 * time.Second, true, false, true},
		{[]string{"--", "-L"}, "-L", flock.DefaultClockSlop, false, false, false},
		{[]string{"--json", "--", "--json"}, "--json", flock.DefaultClockSlop, true, false, false},
	}
	for _, tt := range tests {
		o, err := parseStatus(tt.args)
		if err != nil || o.path != tt.path || o.lock.slop.d != tt.slop || o.asJSON != tt.asJSON || o.quiet != tt.quiet || o.lock.deadOwner != tt.deadOwner {
			t.Errorf("parseStatus(%q) = %+v, %v; want path %q, slop %v, json %v, quiet %v, dead-owner-break %v",
				tt.args, o, err, tt.path, tt.slop, tt.asJSON, tt.quiet, tt.deadOwner)
		}
	}
}

func TestBreakArgs(t *testing.T) {
	tests := []struct {
		args             []string
		path             string
		slop             time.Duration
		force, deadOwner bool
	}{
		{[]string{"L"}, "L", flock.DefaultClockSlop, false, false},
		{[]string{"--force", "L"}, "L", flock.DefaultClockSlop, true, false},
		{[]string{"--clock-slop", "0", "--force", "L"}, "L", 0, true, false},
		{[]string{"--dead-owner-break", "L"}, "L", flock.DefaultClockSlop, false, true},
		{[]string{"--", "-L"}, "-L", flock.DefaultClockSlop, false, false},
		{[]string{"--force", "--", "--force"}, "--force", flock.DefaultClockSlop, true, false},
	}
	for _, tt := range tests {
		o, err := parseBreak(tt.args)
		if err != nil || o.path != tt.path || o.lock.slop.d != tt.slop || o.force != tt.force || o.lock.deadOwner != tt.deadOwner {
			t.Errorf("parseBreak(%q) = %+v, %v; want path %q, slop %v, force %v, dead-owner-break %v",
				tt.args, o, err, tt.path, tt.slop, tt.force, tt.deadOwner)
		}
	}
}

// Mistakes on the command line are usage errors whose message names the
// flag as it was typed, and gives every bad duration the same wording.
func TestFlagMessages(t *testing.T) {
	const dur = ": want a duration 0 or more and at most 876000h (100 years), in seconds (2, 0.5) or as a Go duration (500ms, 1m30s)"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-w", "-1", "L", "true"}, "-w -1" + dur},
		{[]string{"--timeout", "soon", "L", "true"}, "--timeout soon" + dur},
		{[]string{"--timeout=NaN", "L", "true"}, "--timeout NaN" + dur},
		{[]string{"-kNaN", "L", "true"}, "-k NaN" + dur},
		{[]string{"-k", "", "L", "true"}, `-k ""` + dur},
		{[]string{"-w", "876001h", "L", "true"}, "-w 876001h" + dur},
		{[]string{"-w", "+Inf", "L", "true"}, "-w +Inf" + dur},
		{[]string{"status", "--clock-slop", "1parsec", "L"}, "--clock-slop 1parsec" + dur},
		{[]string{"break", "-clock-slop", "-2", "L"}, "-clock-slop -2" + dur},
		{[]string{"-l", "0", "L", "true"}, "-l 0: want a duration above 0 and at most 876000h (100 years)"},
		{[]string{"--lifetime=0s", "L", "true"}, "--lifetime 0s: want a duration above 0"},
		{[]string{"-l", "0.001", "L", "true"}, "-l 0.001: want a lifetime of at least 100ms"},
		{[]string{"--lifetime=99ms", "L", "true"}, "--lifetime 99ms: want a lifetime of at least 100ms"},
		{[]string{"-E", "256", "L", "true"}, "-E 256: want an exit status from 0 to 255"},
		{[]string{"--conflict-exit-code", "x", "L", "true"}, "--conflict-exit-code x: want an exit status from 0 to 255"},
		{[]string{"--nope", "L", "true"}, "unknown flag --nope"},
		{[]string{"-nz", "L", "true"}, "unknown flag -z in -nz"},
		{[]string{"status", "-force", "L"}, "unknown flag -force"},
		{[]string{"--json", "L", "true"}, "unknown flag --json"},
		{[]string{"-w"}, "-w needs a DURATION after it"},
		{[]string{"--timeout"}, "--timeout needs a DURATION after it"},
		{[]string{"status", "--json=yes", "L"}, "--json takes no value"},
		{[]string{"-s", "L", "true"}, "-s: a lock file taken with link(2) has one holder at a time"},
		{[]string{"--shared", "L", "true"}, "--shared: a lock file taken with link(2) has one holder at a time"},
		{[]string{"-u", "L", "true"}, "-u: nfsflock releases the lock itself when COMMAND ends"},
		{[]string{"-c", "x", "L"}, "-c comes after LOCKFILE, as in flock(1)"},
		{[]string{"L", "-c"}, "-c after LOCKFILE takes exactly one COMMAND, which sh -c runs; got 0 arguments"},
		{[]string{"L", "-c", "a", "b"}, "-c after LOCKFILE takes exactly one COMMAND, which sh -c runs; got 2 arguments"},
		{[]string{"9"}, "nfsflock cannot lock a file descriptor as flock(1) does"},
	}
	for _, tt := range tests {
		err := parseCommandLine(tt.args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse %q: %v; want a usage error saying %q", tt.args, err, tt.want)
		}
	}
}

// A flag after LOCKFILE is a usage error that says where flags go, for
// every verb, and not help, a second LOCKFILE or the name of a command.
func TestFlagAfterLockfile(t *testing.T) {
	tests := [][]string{
		{"L", "-n", "true"},
		{"-q", "L", "--timeout", "5", "true"},
		{"run", "L", "-h"},
		{"status", "L", "--json"},
		{"status", "--json", "L", "--clock-slop", "1"},
		{"status", "L", "-h"},
		{"break", "L", "--force"},
		{"break", "--clock-slop", "0", "L", "-force"},
	}
	for _, args := range tests {
		err := parseCommandLine(args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "flags come before LOCKFILE") {
			t.Errorf("parse %q: %v; want a usage error saying that flags come before LOCKFILE", args, err)
		}
	}
	// After --, nothing is a flag: a second argument is a second LOCKFILE.
	for _, args := range [][]string{{"status", "--", "L", "--json"}, {"break", "--", "L", "--force"}} {
		err := parseCommandLine(args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "one LOCKFILE expected") {
			t.Errorf("parse %q: %v; want a usage error, one LOCKFILE expected", args, err)
		}
	}
}
