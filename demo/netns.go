package main

import ilab "github.com/lvsd/lvsd/internal/lab"

// host is one machine of the lab: a network namespace (internal/lab), its
// Role the demo's short name for it ("lvs-a", "rs1", "client"). Links and
// addresses are set over netlink from the demo process, because under the
// VM's emulated CPU every exec of ip(8) costs a good fraction of a second.
type host = ilab.NS

// proc is a process the demo started inside a host, its output in a log
// file (proc.Log).
type proc = ilab.Proc
