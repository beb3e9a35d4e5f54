package main

import (
	"fmt"
	"io"

	"github.com/lvsd/lvsd/internal/importer"
)

func init() {
	register(command{name: "import", summary: "convert a keepalived.conf or ldirectord.cf to an lvsd config", run: runImport})
}

func runImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("import", "lvsd import keepalived|ldirectord [flags] FILE\n\n"+
		"Print an lvsd TOML config made from FILE on stdout. Every construct that\n"+
		"could not be carried over is listed on stderr as FILE:LINE: keyword: why.\n"+
		"Exit 0: complete; 3: printed, but something was not carried over;\n"+
		"1: FILE could not be read or parsed (nothing printed); 2: bad usage.", stderr)
	configID := fs.String("i", "", "keepalived: the config id (keepalived -i) that selects @ID lines")
	if len(args) == 0 || (args[0] != "keepalived" && args[0] != "ldirectord") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fs.Usage()
			return 0
		}
		fmt.Fprintln(stderr, "usage: lvsd import keepalived|ldirectord [flags] FILE")
		return importer.ExitUsage
	}
	from := args[0]
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "usage: lvsd import %s [flags] FILE\n", from)
		return importer.ExitUsage
	}
	var res *importer.Result
	var err error
	if from == "keepalived" {
		res, err = importer.Keepalived(fs.Arg(0), importer.KeepalivedOptions{ConfigID: *configID})
	} else {
		res, err = importer.Ldirectord(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return importer.ExitError
	}
	if _, err := stdout.Write(res.TOML); err != nil {
		fmt.Fprintf(stderr, "lvsd import: %v\n", err)
		return importer.ExitError
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n)
	}
	return res.ExitCode()
}
