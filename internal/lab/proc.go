package lab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// ProcOptions says where a started process's output goes and how it is
// stopped.
type ProcOptions struct {
	// Log, when set, is a file the output is appended to (after a header
	// line with the time and the command); otherwise it is kept in memory.
	Log string
	// OnLine, when set, sees every line of output as it comes.
	OnLine func(line string)
	// Env is added to the process's environment.
	Env []string
	// Grace is how long Stop waits after SIGTERM before SIGKILL; 5 s when 0.
	Grace time.Duration
}

// Proc is a process the lab started. Its lifecycle (Pid, Exited, Signal,
// Wait, Kill) is proc.Proc's: it runs in a process group of its own, so a
// signal reaches its children too, and dies with the lab's process.
type Proc struct {
	*proc.Proc
	Name string // the command line, for messages
	Log  string // the log file, if ProcOptions.Log was set
	buf  proc.Buffer
	opts ProcOptions
}

// Start starts argv inside the namespace; see StartCmd.
func (ns *NS) Start(o ProcOptions, argv ...string) (*Proc, error) {
	p, err := StartCmd(ns.c, o, ns.Command(argv...))
	if err != nil {
		return nil, ns.errorf("%w", err)
	}
	p.Name = ns.Role + ": " + strings.Join(argv, " ")
	return p, nil
}

// StartCmd starts cmd (in whatever namespace it runs) with its output sent
// as o says, and registers its Stop with c.
func StartCmd(c Cleaner, o ProcOptions, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: strings.Join(cmd.Args, " "), Log: o.Log, opts: o}
	var out io.Writer = &p.buf
	var f *os.File
	if o.Log != "" {
		var err error
		if f, err = os.OpenFile(o.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(f, "---- %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
		out = f
	}
	var pw *io.PipeWriter
	if o.OnLine != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		out = io.MultiWriter(out, pw)
		go func() {
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				o.OnLine(sc.Text())
			}
			io.Copy(io.Discard, pr)
		}()
	}
	cmd.Stdout, cmd.Stderr = out, out
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	var err error
	p.Proc, err = proc.Start(cmd, func() {
		if pw != nil {
			pw.Close()
		}
		if f != nil {
			f.Close()
		}
	})
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	c.Cleanup(func() { p.Stop() })
	return p, nil
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string {
	if p.Log == "" {
		return p.buf.String()
	}
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// Tail returns the last n lines of the output.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitOutput waits up to timeout for substr to appear in the output.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), substr) {
		if p.Exited() {
			return fmt.Errorf("%s exited (%v) before printing %q", p.Name, p.Err(), substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not print %q within %v", p.Name, substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Stop sends SIGTERM to the process group, then SIGKILL if the process has
// not ended within the grace time, and returns its exit error. Calling it
// again is harmless.
func (p *Proc) Stop() error {
	grace := p.opts.Grace
	if grace == 0 {
		grace = 5 * time.Second
	}
	err := p.Proc.Stop(grace)
	// Children the leader left behind (keepalived's VRRP and checker
	// processes, when the parent died first) are still in its group.
	_ = p.Signal(syscall.SIGKILL)
	return err
}
