package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
)

const defaultSocket = "/run/lvsd/lvsd.sock"

// Verbs that ask a running lvsd to do one thing over its control socket.
func init() {
	for _, v := range []struct {
		name, summary, args string
		path                func(a []string) string
	}{
		{"drain", "set a real server's weight to 0 for maintenance; it stays drained across reloads until undrained", "SERVICE REALSERVER",
			func(a []string) string { return "/drain/" + url.PathEscape(a[0]) + "/" + url.PathEscape(a[1]) }},
		{"undrain", "put a drained real server back with its configured weight", "SERVICE REALSERVER",
			func(a []string) string { return "/undrain/" + url.PathEscape(a[0]) + "/" + url.PathEscape(a[1]) }},
		{"takeover", "make this director master of a VRRP instance now (planned maintenance)", "INSTANCE",
			func(a []string) string { return "/takeover/" + url.PathEscape(a[0]) }},
		{"giveup", "hand a VRRP instance to the peer now, without waiting for a timeout", "INSTANCE",
			func(a []string) string { return "/giveup/" + url.PathEscape(a[0]) }},
		{"reset", "undo takeover or giveup, end a resource hold-off, and clear a failed resource stop once you have made sure the resource is stopped", "INSTANCE",
			func(a []string) string { return "/reset/" + url.PathEscape(a[0]) }},
		{"reload", "re-read the config; on any error the old config keeps running", "",
			func(a []string) string { return "/reload" }},
	} {
		register(command{name: v.name, summary: v.summary, run: func(args []string, stdout, stderr io.Writer) int {
			fs := newFlagSet(v.name+" "+v.args, v.summary+".", stderr)
			socket := fs.String("socket", defaultSocket, "control socket of the running lvsd")
			if code, ok := parseFlags(fs, args); !ok {
				return code
			}
			if fs.NArg() != len(strings.Fields(v.args)) {
				fs.Usage()
				return 2
			}
			if err := newControlClient(*socket).do("POST", v.path(fs.Args()), nil); err != nil {
				fmt.Fprintf(stderr, "lvsd %s: %v\n", v.name, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: ok\n", v.name)
			return 0
		}})
	}
}
