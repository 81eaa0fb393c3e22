package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README does not copy the usage: it shows examples, sums up, and
// points to nfsflock -h. TestREADME checks that what it does say of the
// command agrees with the usage: its examples parse, the flags it names
// exist, and its exit statuses are the usage's.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.ReplaceAll(string(b), "\r\n", "\n")
	_, section, ok := strings.Cut(readme, "\n## The nfsflock command\n")
	if !ok {
		t.Fatal(`README.md has no section "## The nfsflock command"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")

	if !strings.Contains(section, "`nfsflock -h`") {
		t.Error("README's section on the command does not point to `nfsflock -h`")
	}

	examples := 0
	for line := range strings.Lines(section) {
		cmdline, ok := strings.CutPrefix(line, "    nfsflock ")
		if !ok {
			continue
		}
		examples++
		cmdline, _, _ = strings.Cut(cmdline, "#")
		args := shellFields(cmdline)
		if err := parseCommandLine(args); err != nil {
			t.Errorf("README's example nfsflock %s: %v", strings.Join(args, " "), err)
		}
	}
	if examples == 0 {
		t.Error("README's section on the command shows no example command line")
	}

	flagNames := regexp.MustCompile("`(--?[a-zA-Z][a-z-]*)`")
	for _, m := range flagNames.FindAllStringSubmatch(section, -1) {
		if !isUsageFlag(m[1]) {
			t.Errorf("README names the flag %s, which the usage does not list", m[1])
		}
	}

	statuses := usageExitStatuses(t)
	_, table, ok := strings.Cut(section, "\n| exit status | meaning |\n")
	if !ok {
		t.Fatal("README's section on the command has no exit status table")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	row := regexp.MustCompile(`(?m)^\| ([^|]*) \|`)
	number := regexp.MustCompile(`\b\d+\b`)
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		for _, code := range number.FindAllString(m[1], -1) {
			if !statuses[code] {
				t.Errorf("README's exit status table has %s, which the usage's Exit status does not", code)
			}
		}
	}
}

// isUsageFlag reports whether the usage lists name as a flag: among the
// names that begin a line of a flag table ("  -n, --nb, --nonblock  ..."),
// or in a synopsis ("[--json]", "nfsflock --version"), not merely in a
// sentence.
func isUsageFlag(name string) bool {
	table := regexp.MustCompile(`(?m)^\s+(--?[a-zA-Z][a-z-]*(, --?[a-zA-Z][a-z-]*)*)( [A-Z]+)?(  |$)`)
	for _, m := range table.FindAllStringSubmatch(usage, -1) {
		for _, n := range strings.Split(m[1], ", ") {
			if n == name {
				return true
			}
		}
	}
	synopsis := regexp.MustCompile(`(?m)\[` + regexp.QuoteMeta(name) + `[ \]]|^  nfsflock ` + regexp.QuoteMeta(name) + `$`)
	return synopsis.MatchString(usage)
}

// usageExitStatuses returns the exit statuses that the usage's Exit status
// section lists.
func usageExitStatuses(t *testing.T) map[string]bool {
	t.Helper()
	_, section, ok := strings.Cut(usage, "\nExit status:\n\n")
	if !ok {
		t.Fatal("the usage has no Exit status section")
	}
	statuses := map[string]bool{}
	entry := regexp.MustCompile(`(?m)^  (\d+)(-\d+)? `)
	for _, m := range entry.FindAllStringSubmatch(section, -1) {
		statuses[m[1]] = true
	}
	if len(statuses) == 0 {
		t.Fatal("the usage's Exit status section lists no status")
	}
	return statuses
}

// shellFields splits a command line into words as sh does for words
// without expansions: at blanks, except inside single quotes.
func shellFields(line string) []string {
	var (
		words  []string
		word   strings.Builder
		inWord bool
		quoted bool
	)
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
