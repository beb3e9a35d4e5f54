package importer

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The check types register themselves with config on import.
	_ "github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from what the importers print now")

// TestDebianSamples imports every LVS and VRRP sample Debian's keepalived
// package ships and the ldirectord example, compares the output and the
// notes with the golden files, and loads each output with lvsd's config
// loader: every imported config must pass `lvsd check`.
func TestDebianSamples(t *testing.T) {
	ka, _ := filepath.Glob("testdata/keepalived/keepalived.conf.*")
	ld, _ := filepath.Glob("testdata/ldirectord/*.cf")
	if len(ka) < 20 || len(ld) < 2 {
		t.Fatalf("samples missing: %d keepalived, %d ldirectord", len(ka), len(ld))
	}
	for _, path := range append(ka, ld...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var res *Result
			var err error
			if strings.Contains(path, "/keepalived/") {
				res, err = Keepalived(path, KeepalivedOptions{})
			} else {
				res, err = Ldirectord(path)
			}
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if _, err := config.Parse(path+".toml", res.TOML); err != nil {
				t.Errorf("the imported config fails lvsd check:\n%v\n%s", err, res.TOML)
			}
			golden(t, filepath.Join("testdata/golden", filepath.Base(path)), res)
		})
	}
}

func notesText(res *Result) string {
	var b strings.Builder
	for _, n := range res.Notes {
		b.WriteString(n.String() + "\n")
	}
	fmt.Fprintf(&b, "exit %d\n", res.ExitCode())
	return b.String()
}

func golden(t *testing.T, base string, res *Result) {
	t.Helper()
	files := map[string]string{base + ".toml": string(res.TOML), base + ".notes": notesText(res)}
	for name, got := range files {
		if *update {
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/importer -update to create it)", err)
		}
		if string(want) != got {
			t.Errorf("%s differs (go test ./internal/importer -update rewrites it after a deliberate change)\n--- got:\n%s\n--- want:\n%s", name, got, want)
		}
	}
}
