package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/lvsd/lvsd/internal/control"
	"github.com/lvsd/lvsd/internal/status"
)

func init() {
	register(command{name: "status", summary: "show services, real servers with health and weight, and VRRP state of a running lvsd", run: runStatus})
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "Show what a running lvsd is doing: each service with its real servers' health,\nlast check reason and latency, weight and connections, and each VRRP instance's state.", stderr)
	socket := fs.String("socket", defaultSocket, "control socket of the running lvsd")
	asJSON := fs.Bool("json", false, "print the raw JSON status document")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	st, err := control.NewClient(*socket).Status(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, "lvsd status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	status.WriteText(stdout, st)
	return 0
}
