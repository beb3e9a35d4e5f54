package proc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunExit(t *testing.T) {
	r := Run(context.Background(), []string{"/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"}, RunOptions{Env: []string{"X=1"}})
	if r.TimedOut || r.Err == nil || r.String() != "exit 3: hello oops" {
		t.Fatalf("got %q (timed out %v, err %v)", r.String(), r.TimedOut, r.Err)
	}
	r = Run(context.Background(), []string{"/bin/sh", "-c", `test "$X" = 1`}, RunOptions{Env: []string{"X=1"}})
	if r.Err != nil || r.String() != "exit 0" {
		t.Fatalf("env: %q", r.String())
	}
	r = Run(context.Background(), []string{"/nonexistent/prog"}, RunOptions{})
	if r.Err == nil || !strings.Contains(r.String(), "no such file") {
		t.Fatalf("missing program: %q", r.String())
	}
}

// TestRunTimeoutKillsGroup: a command that outlives ctx is killed with
// what it started, and Run returns at once.
func TestRunTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := Run(ctx, []string{"/bin/sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"}, RunOptions{})
	if !r.TimedOut || r.Duration > 5*time.Second || !strings.HasPrefix(r.String(), "timed out after") {
		t.Fatalf("got %q after %v", r.String(), r.Duration)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the script's child %s outlived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunLeavesDaemon: a start script whose daemon keeps stdout open
// returns when the script exits, and the daemon keeps running.
func TestRunLeavesDaemon(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "daemon")
	r := Run(context.Background(), []string{"/bin/sh", "-c", "echo started; (sleep 60; echo late) & echo $! > " + pidFile}, RunOptions{})
	if r.Err != nil || r.Duration > 2*time.Second {
		t.Fatalf("got %q after %v", r.String(), r.Duration)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if !processAlive(t, pid) {
		t.Fatal("the daemon died with its start script")
	}
	n, _ := strconv.Atoi(pid)
	syscall.Kill(n, syscall.SIGKILL)
}

func processAlive(t *testing.T, pid string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// A zombie (state Z) is dead, merely not reaped by its parent.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}
