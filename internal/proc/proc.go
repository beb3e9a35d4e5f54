// Package proc runs child processes in a process group of their own, so a
// signal reaches their children too: Start for the e2e lab, the demo and
// the benches (killed when the parent dies), Run for the commands the
// daemon waits for (run.go).
package proc

import (
	"bytes"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a started process.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// Start starts cmd in a process group of its own, with Pdeathsig set so it
// does not outlive the caller. afterExit, if not nil, runs once the process
// has been waited for and before Done is closed.
func Start(cmd *exec.Cmd, afterExit func()) (*Proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if afterExit != nil {
			afterExit()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; valid once Done is closed.
func (p *Proc) Err() error { return p.err }

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
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(-p.Pid(), sig) }

// Wait waits up to timeout for the process to end and returns its exit error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return errors.New(p.Cmd.Path + ": still running after " + timeout.String())
	}
}

// Kill sends SIGKILL to the process group, waits for the process to end
// and returns its exit error.
func (p *Proc) Kill() error {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process group, then SIGKILL if the process has
// not ended within grace, and returns its exit error. Calling it again is
// harmless.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Kill()
	}
	return p.err
}

// Buffer is a bytes.Buffer safe for a process's writer goroutines and a
// reader.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
