package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pid 42 on h.example.com", "pid 42 on h.example.com"},
		{"héllo wörld", "héllo wörld"},
		{"a\x1b[2J\nb", `a\x1b[2J\nb`},
		{"csi \u009b2J", `csi \u009b2J`},
		{"rtl \u202egnp.exe", `rtl \u202egnp.exe`},
		{"bad \xff byte", `bad \xff byte`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuoted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"h.example.com", "h.example.com"},
		{"evil\x1b[2J\nfake", `"evil\x1b[2J\nfake"`},
		{`say "hi"`, `"say \"hi\""`},
	}
	for _, tt := range tests {
		if got := quoted(tt.in); got != tt.want {
			t.Errorf("quoted(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// printJSON escapes what encoding/json leaves raw, and the text still
// decodes to the same strings.
func TestPrintJSON(t *testing.T) {
	in := map[string]string{"hostname": "evil\x1b[2J\u009b2J\x7f\u202e\U000e0001\nfake"}
	text, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printJSON(&b, text); err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(b.String(), "\n", ""); printable(got) != got {
		t.Errorf("printJSON wrote %q; want every character printable but newlines", b.String())
	}
	for _, c := range []string{"\x1b", "\u009b", "\x7f", "\u202e", "\U000e0001"} {
		if bytes.Contains(b.Bytes(), []byte(c)) {
			t.Errorf("printJSON wrote %q raw in %q", c, b.String())
		}
	}
	var out map[string]string
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || out["hostname"] != in["hostname"] {
		t.Errorf("json.Unmarshal(printJSON(%q)) = %q, %v; want the same", in, out, err)
	}
}
