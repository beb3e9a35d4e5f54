// Command genman writes lvsd's man pages, made from README.md (see
// internal/manpage), into a directory: genman -readme README.md -out DIR.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lvsd/lvsd/internal/manpage"
)

func main() {
	readme := flag.String("readme", "README.md", "the README the pages are made from")
	out := flag.String("out", ".", "directory to write NAME.SECTION into")
	flag.Parse()
	data, err := os.ReadFile(*readme)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
	for _, p := range manpage.Pages {
		roff, err := p.Roff(string(data))
		if err != nil {
			fmt.Fprintln(os.Stderr, "genman:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(*out, p.Name+"."+p.Section), roff, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "genman:", err)
			os.Exit(1)
		}
	}
}
