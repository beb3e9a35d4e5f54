package checks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

func TestExec(t *testing.T) {
	target := closedPort(t)
	tests := []struct {
		name    string
		argv    []string
		dynamic bool
		healthy bool
		class   string
		weight  int
	}{
		{name: "exit 0", argv: []string{"true"}, healthy: true, class: "ok", weight: -1},
		{name: "exit 1", argv: []string{"false"}, class: "exit", weight: -1},
		{name: "exit 7 without dynamic weight", argv: []string{"sh", "-c", "exit 7"}, class: "exit", weight: -1},
		{name: "dynamic: exit 0 keeps the configured weight", argv: []string{"true"}, dynamic: true, healthy: true, class: "ok", weight: -1},
		{name: "dynamic: exit 1 fails", argv: []string{"false"}, dynamic: true, class: "exit", weight: -1},
		{name: "dynamic: exit 2 is weight 0", argv: []string{"sh", "-c", "exit 2"}, dynamic: true, healthy: true, class: "ok", weight: 0},
		{name: "dynamic: exit 7 is weight 5", argv: []string{"sh", "-c", "exit 7"}, dynamic: true, healthy: true, class: "ok", weight: 5},
		{name: "dynamic: exit 255 is weight 253", argv: []string{"sh", "-c", "exit 255"}, dynamic: true, healthy: true, class: "ok", weight: 253},
		{name: "no shell: metacharacters are plain arguments", argv: []string{"test", "a;false", "=", "a;false"}, healthy: true, class: "ok", weight: -1},
		{name: "target in the environment", argv: []string{"sh", "-c", `test "$LVSD_REALSERVER_IP:$LVSD_REALSERVER_PORT" = "` + target.String() + `"`}, healthy: true, class: "ok", weight: -1},
		{name: "missing program", argv: []string{"/nonexistent/check"}, class: "exit", weight: -1},
		{name: "killed by a signal", argv: []string{"sh", "-c", "kill -TERM $$"}, class: "signal", weight: -1},
		{name: "output in the reason", argv: []string{"sh", "-c", "echo slapd not answering; exit 1"}, class: "exit", weight: -1},
		{name: "timeout", argv: []string{"sleep", "30"}, class: "timeout", weight: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &config.Check{Type: "exec", Settings: &ExecSettings{Command: tc.argv, DynamicWeight: tc.dynamic}}
			r := runOnce(t, c, target, time.Second)
			wantResult(t, r, tc.healthy, tc.class)
			if r.Weight != tc.weight {
				t.Errorf("weight %d, want %d (reason %q)", r.Weight, tc.weight, r.Reason)
			}
			if tc.name == "output in the reason" && !strings.Contains(r.Reason, "slapd not answering") {
				t.Errorf("reason %q lacks the command's output", r.Reason)
			}
		})
	}
}

// A timed-out script's children die with it: the whole process group is killed.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := "sleep 60 & echo $! > " + pidFile + "; wait"
	c := &config.Check{Type: "exec", Settings: &ExecSettings{Command: []string{"sh", "-c", script}}}
	start := time.Now()
	r := runOnce(t, c, closedPort(t), 500*time.Millisecond)
	wantResult(t, r, false, "timeout")
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond+execWaitDelay+2*time.Second {
		t.Errorf("probe returned after %s", elapsed)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("script did not start its child: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	// The child is orphaned and may linger as a zombie where nothing reaps,
	// but it must not be running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !processRunning(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the timed-out script is still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processRunning(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	state := processState(pid)
	return state != "" && state != "Z" && state != "X"
}

// processState is the one-letter state from /proc/PID/stat, or "" if gone.
func processState(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}
