package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/lvsd/lvsd/internal/control"
)

const defaultSocket = "/run/lvsd/lvsd.sock"

// Verbs that ask a running lvsd to do one thing over its control socket.
func init() {
	for _, v := range []struct {
		name, summary, args string
		do                  func(ctx context.Context, c *control.Client, a []string) error
	}{
		{"drain", "set a real server's weight to 0 for maintenance; it stays drained across reloads until undrained", "SERVICE REALSERVER",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Drain(ctx, a[0], a[1], true) }},
		{"undrain", "put a drained real server back with its configured weight", "SERVICE REALSERVER",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Drain(ctx, a[0], a[1], false) }},
		{"takeover", "make this director master of a VRRP instance now (planned maintenance)", "INSTANCE",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Takeover(ctx, a[0]) }},
		{"giveup", "hand a VRRP instance to the peer now, without waiting for a timeout", "INSTANCE",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Giveup(ctx, a[0]) }},
		{"reset", "undo takeover or giveup, end a resource hold-off, and clear a failed resource stop once you have made sure the resource is stopped", "INSTANCE",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Reset(ctx, a[0]) }},
		{"reload", "re-read the config; on any error the old config keeps running", "",
			func(ctx context.Context, c *control.Client, a []string) error { return c.Reload(ctx) }},
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
			if err := v.do(context.Background(), control.NewClient(*socket), fs.Args()); err != nil {
				fmt.Fprintf(stderr, "lvsd %s: %v\n", v.name, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: ok\n", v.name)
			return 0
		}})
	}
}
