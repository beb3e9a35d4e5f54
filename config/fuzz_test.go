package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Whatever the input, Parse
// returns either a config with every default filled or an Errors whose
// every message names the file; it never panics or hangs.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.toml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %q is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if !strings.HasPrefix(e.Error(), "f.toml") {
					t.Fatalf("error %q does not start with the file name", e)
				}
			}
			if cfg != nil {
				t.Fatal("both a config and an error")
			}
			return
		}
		for _, s := range cfg.Services {
			for _, r := range s.RealServers {
				if r.Weight < 0 || r.Forwarding == "" || !r.Address.IsValid() {
					t.Fatalf("real server without defaults: %+v", r)
				}
				for _, c := range r.Checks {
					n := 0
					for _, set := range []bool{c.TCP != nil, c.HTTP != nil, c.DNS != nil, c.LDAP != nil, c.Exec != nil} {
						if set {
							n++
						}
					}
					if n != 1 || c.Interval.Duration <= 0 || c.Timeout.Duration >= c.Interval.Duration || c.Rise < 1 || c.Fall < 1 {
						t.Fatalf("check without defaults: %+v", c)
					}
				}
			}
		}
	})
}

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
