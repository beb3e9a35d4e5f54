package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
)

// TestWarnings loads every testdata/warn-*.toml, which must be valid, and
// compares its warnings with the sibling .warn file, as TestInvalid does
// for errors: these lines are what `lvsd check` prints.
func TestWarnings(t *testing.T) {
	files, err := filepath.Glob("testdata/warn-*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no warn-*.toml (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".toml") + ".warn")
			if err != nil {
				t.Fatal(err)
			}
			cfg := mustLoad(t, file)
			var lines []string
			for _, w := range cfg.Warnings {
				lines = append(lines, w.Error())
			}
			if got := strings.Join(lines, "\n"); got != strings.TrimRight(string(want), "\n") {
				t.Errorf("warnings differ\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
	for _, file := range []string{"testdata/valid-minimal.toml", "testdata/valid-full.toml"} {
		if ws := mustLoad(t, file).Warnings; len(ws) != 0 {
			t.Errorf("%s: unexpected warnings %v", file, ws)
		}
	}
}

func TestAnnounceDefaults(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-minimal.toml")
	if a := cfg.Announce; a.Device != "lvsd-anycast" || a.BIRDSocket != "/run/bird/bird.ctl" || len(a.TrackVRRP) != 0 {
		t.Errorf("announce defaults: %+v", a)
	}
	if cfg.Services[0].Announce {
		t.Error("announce is on by default")
	}
	src := "[announce]\ndevice = \"vips0\"\nbird_socket = \"\"\n\n[[service]]\nvip = \"192.0.2.1\"\nport = 80\nscheduler = \"mh\"\nsched_flags = [\"mh-fallback\"]\nforwarding = \"dr\"\nannounce = true\n"
	cfg, err := config.Parse("aa.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Announce; a.Device != "vips0" || a.BIRDSocket != "" {
		t.Errorf("explicit announce: %+v (bird_socket \"\" must stay empty: it disables BGP status)", a)
	}
	if !cfg.Services[0].Announce || len(cfg.Warnings) != 0 {
		t.Errorf("announce = %v, warnings %v", cfg.Services[0].Announce, cfg.Warnings)
	}
}
