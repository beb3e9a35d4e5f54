package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process started in a namespace by Start.
type Proc struct {
	Cmd  *exec.Cmd
	name string
	out  syncBuffer
	done chan struct{}
	err  error // valid once done is closed
}

// Start starts argv in the namespace. Its stdout and stderr are captured and
// written to the test log if the test fails. The process (and its process
// group) is killed when the test ends.
func (ns *NS) Start(argv ...string) *Proc {
	ns.t.Helper()
	p := &Proc{name: ns.Name + ": " + strings.Join(argv, " "), done: make(chan struct{})}
	p.Cmd = ns.Command(argv...)
	p.Cmd.Stdout = &p.out
	p.Cmd.Stderr = &p.out
	// A group of its own lets Stop reach the children too; Pdeathsig stops
	// orphans when the test binary dies.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		ns.t.Fatalf("lab: start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t := ns.t
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("lab: output of %s:\n%s", p.name, p.Output())
		}
	})
	return p
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Output returns everything the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitOutput waits up to timeout for substr to appear in the output.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), substr) {
		if p.Exited() {
			return fmt.Errorf("lab: %s exited (%v) before printing %q", p.name, p.err, substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s did not print %q within %v", p.name, substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Pid(), sig)
}

// Wait waits up to timeout for the process to end and returns its exit error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return errors.New("lab: " + p.name + ": still running after " + timeout.String())
	}
}

// Stop sends SIGTERM, then SIGKILL if the process has not ended within 5 s,
// and returns its exit error. Calling it again is harmless.
func (p *Proc) Stop() error {
	if p.Exited() {
		return p.err
	}
	p.Signal(syscall.SIGTERM)
	if p.Wait(5*time.Second) != nil && !p.Exited() {
		return p.Kill()
	}
	return p.err
}

// Kill sends SIGKILL to the process group and waits for the process to end.
func (p *Proc) Kill() error {
	p.Signal(syscall.SIGKILL)
	<-p.done
	return p.err
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec.Cmd and
// a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
