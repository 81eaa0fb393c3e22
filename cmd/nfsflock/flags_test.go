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
// is the command, and -- lets it begin with a dash.
func TestRunArgs(t *testing.T) {
	tests := []struct {
		args     []string
		path     string
		argv     []string
		nonblock bool
	}{
		{[]string{"L", "true"}, "L", []string{"true"}, false},
		{[]string{"-n", "L", "true"}, "L", []string{"true"}, true},
		{[]string{"-n", "L", "--", "true"}, "L", []string{"true"}, true},
		{[]string{"L", "--", "-n"}, "L", []string{"-n"}, false},
		{[]string{"--", "L", "-n"}, "L", []string{"-n"}, false},
		{[]string{"-n", "--", "-L", "true"}, "-L", []string{"true"}, true},
		{[]string{"-w", "0", "L", "true"}, "L", []string{"true"}, true},
		{[]string{"L", "--", "--", "x"}, "L", []string{"--", "x"}, false},
		{[]string{"L", "sh", "-c", "exit 3", "-n", "--", "-w"}, "L", []string{"sh", "-c", "exit 3", "-n", "--", "-w"}, false},
		{[]string{"L", "-"}, "L", []string{"-"}, false},
	}
	for _, tt := range tests {
		o, err := parseRun(tt.args)
		if err != nil || o.path != tt.path || !slices.Equal(o.argv, tt.argv) || o.nonblock != tt.nonblock {
			t.Errorf("parseRun(%q) = path %q, argv %q, nonblock %v, %v; want %q, %q, %v, nil",
				tt.args, o.path, o.argv, o.nonblock, err, tt.path, tt.argv, tt.nonblock)
		}
	}
}

func TestStatusArgs(t *testing.T) {
	tests := []struct {
		args []string
		want statusOptions
	}{
		{[]string{"L"}, statusOptions{path: "L", slop: flock.DefaultClockSlop}},
		{[]string{"--json", "L"}, statusOptions{path: "L", slop: flock.DefaultClockSlop, asJSON: true}},
		{[]string{"--clock-slop", "2", "--json", "L"}, statusOptions{path: "L", slop: 2 * time.Second, asJSON: true}},
		{[]string{"--", "-L"}, statusOptions{path: "-L", slop: flock.DefaultClockSlop}},
		{[]string{"--json", "--", "--json"}, statusOptions{path: "--json", slop: flock.DefaultClockSlop, asJSON: true}},
	}
	for _, tt := range tests {
		if got, err := parseStatus(tt.args); err != nil || got != tt.want {
			t.Errorf("parseStatus(%q) = %+v, %v; want %+v, nil", tt.args, got, err, tt.want)
		}
	}
}

func TestBreakArgs(t *testing.T) {
	tests := []struct {
		args []string
		want breakOptions
	}{
		{[]string{"L"}, breakOptions{path: "L", slop: flock.DefaultClockSlop}},
		{[]string{"--force", "L"}, breakOptions{path: "L", slop: flock.DefaultClockSlop, force: true}},
		{[]string{"--clock-slop", "0", "--force", "L"}, breakOptions{path: "L", force: true}},
		{[]string{"--", "-L"}, breakOptions{path: "-L", slop: flock.DefaultClockSlop}},
		{[]string{"--force", "--", "--force"}, breakOptions{path: "--force", slop: flock.DefaultClockSlop, force: true}},
	}
	for _, tt := range tests {
		if got, err := parseBreak(tt.args); err != nil || got != tt.want {
			t.Errorf("parseBreak(%q) = %+v, %v; want %+v, nil", tt.args, got, err, tt.want)
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
