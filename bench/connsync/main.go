// Command connsync measures IPVS connection sync across a director failover:
// how many long-lived connections through the VIP survive a SIGKILL of the
// master director, and the longest gap a 10 ms request stream sees, for an
// lvsd pair and a keepalived pair (lvs_sync_daemon) in the same run.
//
// It runs inside the IPVS VM (make bench-connsync). The echo and client
// subcommands are the roles it runs inside the network namespaces it builds.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: connsync bench|client|echo [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "bench":
		err = runBench(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	case "echo":
		err = runEcho(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "connsync:", err)
		os.Exit(1)
	}
}
