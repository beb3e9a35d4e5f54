package manpage

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestPagesCarryTheReadme: every key of the README's config reference and
// every command of its command table is in the man pages made from it.
func TestPagesCarryTheReadme(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	keyRow := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	for _, p := range Pages {
		roff, err := p.Roff(readme)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		text := strings.ReplaceAll(string(roff), `\_`, "_")
		if !strings.Contains(text, ".TH "+strings.ToUpper(p.Name)+" "+p.Section) {
			t.Errorf("%s: no .TH line", p.Name)
		}
		n := 0
		for _, h := range p.Sections {
			body, _ := Section(readme, h)
			for _, m := range keyRow.FindAllStringSubmatch(body, -1) {
				n++
				if !strings.Contains(text, m[1]) {
					t.Errorf("%s(%s) lacks %q from the README's %q", p.Name, p.Section, m[1], h)
				}
			}
		}
		if n < 10 {
			t.Errorf("%s: only %d keys found in its README sections", p.Name, n)
		}
	}
}

func TestMissingSection(t *testing.T) {
	if _, err := Section("# x\n## A\nbody\n", "B"); err == nil {
		t.Error("no error for a missing section")
	}
	if s, _ := Section("## A\nbody\n## B\nother\n", "A"); s != "body" {
		t.Errorf("section A = %q", s)
	}
}
