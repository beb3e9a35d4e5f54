package lab

import (
	ilab "github.com/lvsd/lvsd/internal/lab"
)

// Proc is a background process started in a namespace by Start:
// internal/lab's, with Output, WaitOutput, Stop and the process-group
// lifecycle of internal/proc.
type Proc = ilab.Proc

// Start starts argv in the namespace. Its stdout and stderr are captured and
// written to the test log if the test fails. The process (and its process
// group) is stopped when the test ends: SIGTERM, then SIGKILL after 5 s.
func (ns *NS) Start(argv ...string) *Proc {
	ns.t.Helper()
	p, err := ns.NS.Start(ilab.ProcOptions{}, argv...)
	ns.must(err)
	t := ns.t
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("lab: output of %s:\n%s", p.Name, p.Output())
		}
	})
	return p
}
