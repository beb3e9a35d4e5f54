package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"
// (the Makefile does it from git describe). Left empty, the module
// version or VCS revision recorded by the Go toolchain is used instead.
var version string

func init() {
	register(command{name: "version", summary: "print the lvsd version", run: runVersion})
}

// lvsdVersion is the version shown by `lvsd version`, in logs and in status.
func lvsdVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "Print the lvsd version and the Go version it was built with.", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lvsd version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fmt.Fprintf(stdout, "lvsd %s (%s %s/%s)\n", lvsdVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
