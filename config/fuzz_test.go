package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzLineIndex runs the line finder on input that need not be TOML at
// all: Parse only calls it on valid TOML, but it must never panic or loop.
func FuzzLineIndex(f *testing.F) {
	for _, s := range []string{"a = 1\n[[b]]\nc = \"\"\"\nx\n\"\"\"\n", "[a.b]\nc = [1, {d = 2}]", "x = '''", "[[", "{", "a = [1,", "\"a\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x := indexLines(src)
		lines := int32(strings.Count(src, "\n") + 1)
		if x.rootLine < 0 || x.rootLine > lines {
			t.Fatalf("root at line %d of %d", x.rootLine, lines)
		}
		for e, n := range x.nodes {
			if n.line < 0 || n.line > lines {
				t.Fatalf("%q at line %d of %d", e.seg, n.line, lines)
			}
		}
	})
}

// FuzzLineIndexMatchesReference proves the tree of segments answers every
// lookup the decoder can make exactly as the map of whole paths it
// replaced did (kept in positions_ref_test.go): for every path the old
// index recorded, and for a key missing under each, on any input that
// parses as TOML (Parse indexes nothing else).
func FuzzLineIndexMatchesReference(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"a = 1\n[[b]]\nc = \"\"\"\nx\n\"\"\"\n[[b]]\nc = 2\n[b.d]\ne = [1, {f = 2}]",
		"\"\" = 1\n\"\".x = 2\n[\"#0\"]\n\"a.b\" = {'' = 3}",
		"[[a.b]]\n[[a.b.c]]\nx = 1\n[[a.b]]\n[[a.b.c]]\n[[a.b.c]]\ny = [[1], [2, 3]]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var tree map[string]any
		if _, err := toml.Decode(src, &tree); err != nil {
			return
		}
		ref, got := refIndexLines(src), indexLines(src)
		for path := range ref.lines {
			for _, p := range []string{path, join(path, "missing"), join(path, elemSeg(7))} {
				if want, have := ref.lineOf(p), got.lineOf(p); want != have {
					t.Fatalf("lineOf(%q) = %d, want %d", p, have, want)
				}
			}
		}
	})
}
