//go:build unix

package main

import (
	"slices"
	"testing"
)

// The gate reads back exactly the command that nfsflock sends, empty
// strings and all, and refuses what a pipe cut short leaves.
func TestGateSpec(t *testing.T) {
	for _, c := range []struct {
		prog      string
		argv, env []string
	}{
		{"/bin/true", []string{"true"}, []string{"A=1", "B="}},
		{"prog", []string{"", "x y", "=", ""}, nil},
		{"p", nil, []string{""}},
	} {
		spec := gateSpec(c.prog, c.argv, c.env)
		prog, argv, env, ok := parseGateSpec(spec)
		if !ok || prog != c.prog || !slices.Equal(argv, c.argv) || !slices.Equal(env, c.env) {
			t.Errorf("parseGateSpec(gateSpec(%q, %q, %q)) = %q, %q, %q, %v", c.prog, c.argv, c.env, prog, argv, env, ok)
		}
		for n := range len(spec) {
			if prog, argv, env, ok := parseGateSpec(spec[:n]); ok {
				t.Errorf("parseGateSpec(first %d bytes of %q) = %q, %q, %q; want refused", n, spec, prog, argv, env)
			}
		}
	}
}
