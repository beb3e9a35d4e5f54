package lab

import (
	"fmt"
	"strings"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// Proc is a background process started in a namespace by Start. Its
// lifecycle (Pid, Exited, Signal, Wait, Kill) is proc.Proc's.
type Proc struct {
	*proc.Proc
	name string
	out  proc.Buffer
}

// Start starts argv in the namespace. Its stdout and stderr are captured and
// written to the test log if the test fails. The process (and its process
// group) is killed when the test ends.
func (ns *NS) Start(argv ...string) *Proc {
	ns.t.Helper()
	p := &Proc{name: ns.Name + ": " + strings.Join(argv, " ")}
	cmd := ns.Command(argv...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	var err error
	if p.Proc, err = proc.Start(cmd, nil); err != nil {
		ns.t.Fatalf("lab: start %s: %v", p.name, err)
	}
	t := ns.t
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("lab: output of %s:\n%s", p.name, p.Output())
		}
	})
	return p
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitOutput waits up to timeout for substr to appear in the output.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), substr) {
		if p.Exited() {
			return fmt.Errorf("lab: %s exited (%v) before printing %q", p.name, p.Err(), substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s did not print %q within %v", p.name, substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Stop sends SIGTERM, then SIGKILL if the process has not ended within 5 s,
// and returns its exit error. Calling it again is harmless.
func (p *Proc) Stop() error { return p.Proc.Stop(5 * time.Second) }
