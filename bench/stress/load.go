package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lvsd/lvsd/internal/lab"
)

// vmScripts are the loads -vm can run in a qemu TCG VM beside the pairs
// (e2e/vm/run.sh, as the e2e tests run). Each touches $LVSD_VM_OUT/started
// once it runs and ends when the bench creates $LVSD_VM_OUT/stop.
var vmScripts = map[string]string{
	// A booted guest that does nothing: qemu's own threads only.
	"idle": `touch "$LVSD_VM_OUT/started"; while [ ! -e "$LVSD_VM_OUT/stop" ]; do sleep 1; done`,
	// Both vCPUs busy with arithmetic: TCG runs already-translated code.
	// (stress-ng refuses to start where its temp path, the working
	// directory, is read-only, as the repository is in the guest.)
	"cpu": `stress-ng --temp-path /tmp --cpu 0 --quiet & touch "$LVSD_VM_OUT/started"; while [ ! -e "$LVSD_VM_OUT/stop" ]; do sleep 1; done; kill $!; wait`,
	// What the e2e tests do: exec programs (new code for TCG to translate,
	// page faults, 9p reads of the host's files) and make namespaces.
	"exec": `touch "$LVSD_VM_OUT/started"; while [ ! -e "$LVSD_VM_OUT/stop" ]; do ip netns add s; ip -n s link set lo up; ip -n s -o link >/dev/null; ip netns del s; done`,
}

// load is what runs beside the pairs during a window: stress-ng on the
// host and, optionally, the VM.
type load struct {
	stress *lab.Proc
	vm     *lab.Proc
	vmOut  string
}

// startLoad starts stress-ng with args ("" = none) and the VM running
// vmMode ("none" = no VM), and waits until the VM's load runs.
func startLoad(c lab.Cleaner, stressArgs, vmMode, dir string) (*load, error) {
	l := &load{}
	if strings.TrimSpace(stressArgs) != "" {
		cmd := exec.Command("stress-ng", strings.Fields(stressArgs)...)
		p, err := lab.StartCmd(c, lab.ProcOptions{Log: filepath.Join(dir, "stress-ng.log")}, cmd)
		if err != nil {
			return nil, fmt.Errorf("stress-ng (make deps installs it): %w", err)
		}
		l.stress = p
	}
	if vmMode != "none" {
		root, ok := lab.RepoRoot()
		if !ok {
			return nil, fmt.Errorf("-vm: run from the lvsd repository (it uses e2e/vm/run.sh)")
		}
		l.vmOut = filepath.Join(dir, "vm-out")
		os.RemoveAll(l.vmOut)
		if err := os.MkdirAll(l.vmOut, 0o755); err != nil {
			return nil, err
		}
		cmd := exec.Command(filepath.Join(root, "e2e/vm/run.sh"), "-timeout", "86400", "--", "sh", "-c", vmScripts[vmMode])
		cmd.Dir = root
		p, err := lab.StartCmd(c, lab.ProcOptions{Log: filepath.Join(dir, "vm.log"), Env: []string{"LVSD_VM_OUT=" + l.vmOut}, Grace: 60 * time.Second}, cmd)
		if err != nil {
			return nil, err
		}
		l.vm = p
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if _, err := os.Stat(filepath.Join(l.vmOut, "started")); err == nil {
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				l.stop()
				return nil, fmt.Errorf("the VM's load did not start:\n%s", p.Tail(20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return l, nil
}

// stop ends the load: the VM's script sees the stop file and the guest
// powers off, so run.sh cleans up after itself.
func (l *load) stop() {
	if l.stress != nil {
		l.stress.Stop()
	}
	if l.vm != nil {
		os.WriteFile(filepath.Join(l.vmOut, "stop"), nil, 0o644)
		if l.vm.Wait(90*time.Second) != nil && !l.vm.Exited() {
			l.vm.Stop()
		}
	}
}

// cpu returns the CPU time stress-ng and the VM have used so far, their
// children included (GNU timeout in run.sh puts qemu in a process group of
// its own).
func (l *load) cpu() (stress, vm time.Duration) {
	if l.stress != nil {
		stress = treeSchedstat(l.stress.Pid()).run
	}
	if l.vm != nil {
		vm = treeSchedstat(l.vm.Pid()).run
	}
	return stress, vm
}

// readCPUTimes reads the cpu line of /proc/stat.
func readCPUTimes() (cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(data))
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: no cpu line: %q", line)
	}
	var t cpuTimes
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user.
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.total += n
		switch i {
		case 3:
			t.idle = n
		case 7:
			t.steal = n
		}
	}
	return t, nil
}

// groupSchedstat sums the schedstat of every thread of every process in
// process group pgid (a daemon and its children).
func groupSchedstat(pgid int) schedstat {
	var sum schedstat
	for pid, st := range processes() {
		if st.pgrp == pgid {
			sum = sum.add(taskSchedstat(pid))
			sum.majflt += st.majflt
		}
	}
	return sum
}

// treeSchedstat sums the schedstat of every thread of pid and of all its
// descendants.
func treeSchedstat(pid int) schedstat {
	procs := processes()
	in := map[int]bool{pid: true}
	for grew := true; grew; {
		grew = false
		for p, st := range procs {
			if !in[p] && in[st.ppid] {
				in[p], grew = true, true
			}
		}
	}
	var sum schedstat
	for p := range in {
		sum = sum.add(taskSchedstat(p))
	}
	return sum
}

type procStat struct {
	ppid, pgrp int
	majflt     uint64 // major page faults: pages read back from disk
}

// processes reads the parent and process group of every process.
func processes() map[int]procStat {
	out := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if st, ok := parseStat(string(stat)); ok {
			out[pid] = st
		}
	}
	return out
}

// taskSchedstat sums the schedstat of pid's threads.
func taskSchedstat(pid int) schedstat {
	var sum schedstat
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if s, ok := parseSchedstat(string(data)); ok {
			sum = sum.add(s)
		}
	}
	return sum
}

// parseStat reads the parent, the process group and the major faults
// from /proc/PID/stat: fields 4, 5 and 12, counted after the command name,
// which may hold spaces and parentheses.
func parseStat(stat string) (procStat, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 10 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	majflt, err3 := strconv.ParseUint(f[9], 10, 64)
	return procStat{ppid: ppid, pgrp: pgrp, majflt: majflt}, err1 == nil && err2 == nil && err3 == nil
}

func parseSchedstat(s string) (schedstat, bool) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return schedstat{}, false
	}
	var v [3]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return schedstat{}, false
		}
		v[i] = n
	}
	return schedstat{run: time.Duration(v[0]), wait: time.Duration(v[1]), slices: v[2]}, true
}
