// Package iplab is the plumbing bench/connsync and bench/ecmp share for
// the labs they build with ip(8): network namespaces, processes started
// inside them in a process group each with their output in a log file,
// and the teardown of both. The topologies stay each benchmark's own.
//
// internal/lab is the netlink-built lab the later benchmarks use (no exec
// per step, unique names); moving these two onto it would retire this
// package.
package iplab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Lab is one trial's namespaces and processes.
type Lab struct {
	Dir   string // where the processes' log files go
	procs []*exec.Cmd
	nss   []string
}

// AddNS creates network namespace name; Close deletes it.
func (l *Lab) AddNS(name string) error {
	if err := IP("netns", "add", name); err != nil {
		return err
	}
	l.nss = append(l.nss, name)
	return nil
}

// Start runs argv in namespace ns in a process group of its own, its
// output to logName in Dir; Close kills the group.
func (l *Lab) Start(ns, logName string, argv ...string) (*exec.Cmd, error) {
	f, err := os.Create(filepath.Join(l.Dir, logName))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { cmd.Wait(); f.Close() }()
	l.procs = append(l.procs, cmd)
	return cmd, nil
}

// Close kills every process Start started, then deletes the namespaces.
func (l *Lab) Close() {
	for _, p := range l.procs {
		KillGroup(p)
	}
	time.Sleep(100 * time.Millisecond)
	for _, ns := range l.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// KillGroup SIGKILLs the process group of a process Start started; nil is
// allowed (a process not started yet).
func KillGroup(cmd *exec.Cmd) {
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// IP runs ip(8) with args; the error carries its output.
func IP(args ...string) error {
	_, err := run(append([]string{"ip"}, args...)...)
	return err
}

// In runs argv inside namespace ns and returns its output.
func In(ns string, argv ...string) (string, error) {
	return run(append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

func run(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// WaitUntil polls cond every 20 ms until it holds or timeout has passed.
func WaitUntil(timeout time.Duration, what string, cond func() bool) error {
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
