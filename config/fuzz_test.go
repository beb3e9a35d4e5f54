package config

import (
	"strings"
	"testing"
)

// FuzzLineIndex runs the line finder on input that need not be TOML at
// all: Parse only calls it on valid TOML, but it must never panic or loop.
func FuzzLineIndex(f *testing.F) {
	for _, s := range []string{"a = 1\n[[b]]\nc = \"\"\"\nx\n\"\"\"\n", "[a.b]\nc = [1, {d = 2}]", "x = '''", "[[", "{", "a = [1,", "\"a\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x := indexLines(src)
		lines := strings.Count(src, "\n") + 1
		for path, l := range x.lines {
			if l < 1 || l > lines {
				t.Fatalf("%q at line %d of %d", path, l, lines)
			}
		}
	})
}
