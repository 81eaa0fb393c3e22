package claim

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in     string
		prefer string
		want   Details
		ok     bool
	}{
		{"/v/app.lck|h.example.com|4242|7308917433465018353", "|", Details{"/v/app.lck", "h.example.com", 4242, "|"}, true},
		{"/v/app.lck|h|42|7\n", "|", Details{"/v/app.lck", "h", 42, "|"}, true},
		{`C:\v\app.lck^h^42^7`, "|", Details{`C:\v\app.lck`, "h", 42, "^"}, true},
		{"app.lck|h|42|7", "^", Details{"app.lck", "h", 42, "|"}, true},
		{"", "|", Details{}, false},
		{"garbage", "|", Details{}, false},
		{"a|b|c", "|", Details{}, false},
		{"a|b|c|d|e", "|", Details{}, false},
		{"a|h|x|7", "|", Details{}, false},
		{"a|h|-1|7", "|", Details{}, false},
		{"a|h|+1|7", "|", Details{}, false},
		{"a|h|0|7", "|", Details{}, false},
		{"a|h|1|-7", "|", Details{}, false},
		{"|h|1|7", "|", Details{}, false},
		{"a||1|7", "|", Details{}, false},
		{"a|h|1|7\x00", "|", Details{}, false},
		{"a|h|99999999999999999999999|7", "|", Details{}, false},
	}
	for _, tt := range tests {
		got, ok := Parse([]byte(tt.in), tt.prefer)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Parse(%q, %q) = %+v, %v; want %+v, %v", tt.in, tt.prefer, got, ok, tt.want, tt.ok)
		}
	}
}

func TestName(t *testing.T) {
	got := Name("/v/app.lck", "|", "h.example.com", 4242, 7308917433465018353, 42)
	if want := "/v/app.lck|h.example.com|4242|7308917433465018353000000000000042"; got != want {
		t.Errorf("Name = %q; want %q", got, want)
	}
	if got := Name("/v/app.lck", "|", "h", 1, 7, 0); got != "/v/app.lck|h|1|0000000000000000007000000000000000" {
		t.Errorf("Name with a small random part = %q; want it zero-padded", got)
	}
}

func TestTagOf(t *testing.T) {
	tests := []struct {
		name string
		tag  uint64
		ok   bool
	}{
		{Name("/v/app.lck", "|", "h", 1, 7, 42), 42, true},
		{Name("/v/app.lck", "^", "h", 1, 7, MaxTag), MaxTag, true},
		{Name("/v/app.lck", "|", "h", 1, 7, 0), 0, false},                 // no namespace known
		{"/v/app.lck|h|1|7308917433465018353", 0, false},                  // flufl.lock's
		{"/v/app.lck|h|1|73089174334650183530000000000000420", 0, false},  // one digit too many
		{"/v/app.lck|h|x|7308917433465018353000000000000042", 0, false},   // not a claim
		{"app.lck|h|1|0000000000000000007000000000000042", 42, true},      // a base name
		{"/v/app.lck|h|1|00000000000000000070000000000000x2", 0, false},   // not digits
		{"/v/app.lck|h|1|0000000000000000007000000000000042\n", 0, false}, // not digits either
	}
	for _, tt := range tests {
		tag, ok := TagOf(tt.name, "|")
		if tag != tt.tag || ok != tt.ok {
			t.Errorf("TagOf(%q) = %d, %v; want %d, %v", tt.name, tag, ok, tt.tag, tt.ok)
		}
	}
}

func TestRemovable(t *testing.T) {
	tests := []struct {
		contents string
		want     string
		ok       bool
	}{
		{"/v/app.lck|h|42|7", "app.lck|h|42|7", true},
		{"app.lck|h|42|7", "app.lck|h|42|7", true}, // a Python claim made with a relative path
		{"/elsewhere/app.lck|h|42|7", "app.lck|h|42|7", true},
		{`C:\v\app.lck^h^42^7`, "app.lck^h^42^7", true},
		{"/v/app.lck|h|42|7|8", "", false},
		{"/v/other.lck|h|42|7", "", false},
		{"/v/app.lck", "", false},
		{"/etc/passwd", "", false},
		{"..", "", false},
		{"/v/app.lck|h/../../x|42|7", "", false},
		{"app.lck|h|42|7/..", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := Removable([]byte(tt.contents), "app.lck", "|")
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("Removable(%q) = %q, %v; want %q, %v", tt.contents, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzRemovable: whatever a lock file holds, what may be removed is a base
// name of the lock's own claims: no path separators, the lock's prefix.
func FuzzRemovable(f *testing.F) {
	for _, s := range []string{"/v/app.lck|h|42|7", "app.lck^h^1^2", "../x", "app.lck|a|1|2/../b", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, contents []byte) {
		name, ok := Removable(contents, "app.lck", "|")
		if !ok {
			return
		}
		if strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." || name == "app.lck" {
			t.Fatalf("Removable(%q) = %q", contents, name)
		}
		if !strings.HasPrefix(name, "app.lck|") && !strings.HasPrefix(name, "app.lck^") {
			t.Fatalf("Removable(%q) = %q: not a claim of app.lck", contents, name)
		}
		if _, ok := Parse([]byte(name), "|"); !ok {
			t.Fatalf("Removable(%q) = %q, which does not parse", contents, name)
		}
	})
}
