package checks

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/config"
)

// ExecSettings are the keys of an exec check: run a command (argv, no
// shell); exit 0 is healthy.
type ExecSettings struct {
	Command []string `toml:"command"`
	// DynamicWeight follows keepalived's misc_dynamic: exit 0 healthy,
	// 1 failed, 2..255 healthy with weight exit-2.
	DynamicWeight bool `toml:"dynamic_weight"`
}

// SetsWeight reports dynamic_weight, which config warns about where
// directors must agree on weights (active-active).
func (e *ExecSettings) SetsWeight() bool { return e.DynamicWeight }

// Defaults has nothing to fill: the command is required.
func (e *ExecSettings) Defaults(config.CheckDefaults) {}

// Validate requires a program to run.
func (e *ExecSettings) Validate(p *config.Problems) {
	switch {
	case len(e.Command) == 0:
		p.Add("command", `required (an argv list such as ["/usr/local/bin/check-app", "--quick"])`)
	case e.Command[0] == "":
		p.Add("command", "the program name (first element) is empty")
	}
}

// Port is optional: the script is told the port when there is one.
func (e *ExecSettings) Port() config.PortUse { return config.PortOptional }

func (e *ExecSettings) Describe() string {
	what := "run " + strings.Join(e.Command, " ")
	if e.DynamicWeight {
		what += " (exit code sets weight)"
	}
	return what
}

func (e *ExecSettings) DedupKey() string { return dedupKey(e) }

// execWaitDelay is how long Wait waits for output pipes after the script
// exited or its process group was killed; a grandchild that left the group
// could hold them open. Short: a timeout returned later than its deadline
// by more than probeTolerance (at least 20 ms) reads as lvsd being late,
// and does not count (judgeTimeout); held open pipes must not turn a
// hung script's every timeout into that.
const execWaitDelay = 10 * time.Millisecond

// execChecker runs a command in its own process group; exit 0 is healthy.
type execChecker struct {
	argv    []string
	env     []string
	dynamic bool
}

func (e *ExecSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	env := append(os.Environ(),
		"LVSD_REALSERVER_IP="+target.Addr().String(),
		"LVSD_REALSERVER_PORT="+strconv.Itoa(int(target.Port())),
	)
	if c.SourceAddress.IP.IsValid() {
		env = append(env, "LVSD_SOURCE_ADDRESS="+c.SourceAddress.IP.String())
	}
	return &execChecker{argv: e.Command, env: env, dynamic: e.DynamicWeight}, nil
}

func (e *execChecker) Check(ctx context.Context) Result {
	start := time.Now()
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	cmd.Env = e.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group, so children of a timed-out script die with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay
	out := &boundedBuffer{limit: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if cmd.Process != nil {
		// Reap stragglers the script left behind in its group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	name := e.argv[0]
	if ctx.Err() != nil {
		return timed(start, failf("timeout", "%s: killed its process group after %s", name, time.Since(start).Round(time.Millisecond)))
	}
	// Judge by the exit status even when Wait also gave up on output pipes
	// a background grandchild kept open (exec.ErrWaitDelay).
	state := cmd.ProcessState
	switch {
	case state == nil && localErr(err):
		return timed(start, failf(LocalClass, "%s: %v", name, err))
	case state == nil:
		return timed(start, failf("exit", "%s: %v", name, err))
	case state.Success():
		return timed(start, okf("%s exited 0", name))
	default:
		return timed(start, e.judgeExit(name, state, out.String()))
	}
}

func (e *execChecker) judgeExit(name string, state *os.ProcessState, output string) Result {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return failf("signal", "%s killed by %s%s", name, ws.Signal(), detail(output))
	}
	code := state.ExitCode()
	if e.dynamic && code >= 2 {
		// keepalived's misc_dynamic: exit 2..255 is healthy with weight exit-2.
		r := okf("%s exited %d: weight %d", name, code, code-2)
		r.Weight = code - 2
		return r
	}
	return failf("exit", "%s exited %d%s", name, code, detail(output))
}

func detail(output string) string {
	if s := excerpt(output, 200); s != "" {
		return fmt.Sprintf(" (%s)", s)
	}
	return ""
}

// boundedBuffer keeps the first limit bytes written to it and drops the rest,
// so a chatty script cannot grow lvsd's memory.
type boundedBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
