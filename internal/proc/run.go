package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Run is how the daemon runs a command it waits for (a VRRP resource's
// start, stop or status, a tracked script): argv without a shell, in a
// process group of its own, the whole group killed when ctx ends.
//
// Output is read from a pipe that the child gets as a plain file, not
// through os/exec's copying goroutines: a start script whose daemon keeps
// stdout open would otherwise hold Wait until WaitDelay, and closing our
// end would kill that daemon with SIGPIPE on its next log line. So Run
// returns when the command exits, and a goroutine keeps draining (and
// dropping) whatever a daemon writes afterwards until it closes the pipe.

// RunOptions adjust Run.
type RunOptions struct {
	// Env is added to lvsd's environment.
	Env []string
	// OutputLimit is how much of stdout and stderr is kept; default 4096.
	OutputLimit int
	// KillLeftovers kills whatever the command left running in its process
	// group once it has exited: right for a check, wrong for a start
	// script whose daemon stays in the group.
	KillLeftovers bool
}

// Result is how one run ended.
type Result struct {
	// Err is nil when the command exited 0; else an *exec.ExitError, the
	// error that kept it from starting, or ctx's error when it was killed.
	Err error
	// TimedOut says ctx ended first and the process group was killed.
	TimedOut bool
	// Output is the start of what it wrote to stdout and stderr.
	Output   string
	Duration time.Duration
}

// outputGrace is how long Run waits, after the command exited, for the
// output it wrote to be read from the pipe.
const outputGrace = 50 * time.Millisecond

// Run runs argv and waits for it, or kills its process group when ctx ends.
func Run(ctx context.Context, argv []string, o RunOptions) Result {
	start := time.Now()
	if len(argv) == 0 {
		return Result{Err: errors.New("empty command")}
	}
	if err := ctx.Err(); err != nil {
		return Result{Err: err, TimedOut: true}
	}
	if o.OutputLimit <= 0 {
		o.OutputLimit = 4096
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return Result{Err: err, Duration: time.Since(start)}
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return Result{Err: err, Duration: time.Since(start)}
	}
	out := &limited{limit: o.OutputLimit}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, r)
		r.Close()
		close(eof)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	res := Result{}
	pgid := cmd.Process.Pid
	select {
	case res.Err = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		res.Err, res.TimedOut = ctx.Err(), true
	}
	if o.KillLeftovers {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	res.Duration = time.Since(start)
	select {
	case <-eof:
	case <-time.After(outputGrace):
	}
	res.Output = out.String()
	return res
}

// String says how the run ended, for logs and status: "exit 0", "exit 1:
// OUTPUT", "killed by signal 9", "timed out after 2s".
func (r Result) String() string {
	var s string
	var ee *exec.ExitError
	switch {
	case r.TimedOut && errors.Is(r.Err, context.Canceled):
		s = "cancelled after " + r.Duration.Round(time.Millisecond).String() + ": process group killed"
	case r.TimedOut:
		s = "timed out after " + r.Duration.Round(time.Millisecond).String() + ": process group killed"
	case r.Err == nil:
		s = "exit 0"
	case errors.As(r.Err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			s = "killed by " + ws.Signal().String()
		} else {
			s = fmt.Sprintf("exit %d", ee.ExitCode())
		}
	default:
		s = r.Err.Error()
	}
	if o := excerpt(r.Output, 200); o != "" && r.Err != nil {
		s += ": " + o
	}
	return s
}

// excerpt is the output on one line, cut at n bytes.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// limited keeps the first limit bytes written to it and drops the rest.
type limited struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

func (b *limited) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limited) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
