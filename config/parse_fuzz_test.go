package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
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
		cfg, err := config.Parse("f.toml", data)
		if err != nil {
			var es config.Errors
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
					if c.Settings == nil || !c.Complete() || c.Interval.Duration <= 0 || c.Timeout.Duration >= c.Interval.Duration || c.Rise < 1 || c.Fall < 1 {
						t.Fatalf("check without defaults: %+v", c)
					}
				}
			}
		}
	})
}
