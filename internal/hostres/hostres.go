// Package hostres samples the resources lvsd itself needs to probe its
// servers, file descriptors and memory, so that the director's eviction
// guard can tell lvsd's own trouble from its servers' failures. A sample
// reads a handful of small files under /proc and /sys; callers take one
// about once a second, never per probe.
package hostres

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// Usage is one sample. A zero limit means it could not be read.
type Usage struct {
	FDs, FDLimit int // open by this process; its RLIMIT_NOFILE soft limit
	// Files and FileMax are the host's allocated file handles and
	// fs.file-max (/proc/sys/fs/file-nr).
	Files, FileMax int64
	// Memory is the tightest of the process's cgroups with a limit and the
	// host; page cache the kernel can drop does not count as used.
	MemUsed, MemLimit uint64
	MemScope          string // "cgroup /system.slice/lvsd.service" or "host"
}

// Limits are the percentages at which lvsd counts itself short; 0 does
// not watch that resource.
type Limits struct {
	FDPercent, MemoryPercent int
}

// Fault says why lvsd is short of a resource, "" if it is not. The reason
// starts with the resource ("fds: ", "memory: "), as check reasons start
// with their class.
func (u Usage) Fault(l Limits) string {
	over := func(used, limit uint64, pct int) bool {
		return pct > 0 && limit > 0 && used*100 >= limit*uint64(pct)
	}
	switch {
	case over(uint64(max(u.FDs, 0)), uint64(max(u.FDLimit, 0)), l.FDPercent):
		return fmt.Sprintf("fds: %d of %d open files in use (%d%%, RLIMIT_NOFILE)", u.FDs, u.FDLimit, percent(uint64(u.FDs), uint64(u.FDLimit)))
	case over(uint64(max(u.Files, 0)), uint64(max(u.FileMax, 0)), l.FDPercent):
		return fmt.Sprintf("fds: %d of %d file handles in use on the host (%d%%, fs.file-max)", u.Files, u.FileMax, percent(uint64(u.Files), uint64(u.FileMax)))
	case over(u.MemUsed, u.MemLimit, l.MemoryPercent):
		return fmt.Sprintf("memory: %s of %s in use (%d%%, %s)", mib(u.MemUsed), mib(u.MemLimit), percent(u.MemUsed, u.MemLimit), u.MemScope)
	}
	return ""
}

func percent(used, limit uint64) uint64 { return used * 100 / max(limit, 1) }

func mib(b uint64) string { return strconv.FormatUint(b>>20, 10) + " MiB" }

// Reader reads Usage from the /proc and /sys tree under Root.
type Reader struct {
	Root string // "/" on a host; a directory of fake files in tests
	// CountFDs and Rlimit default to this process's own.
	CountFDs func() (int, error)
	Rlimit   func() (int, error)
}

// Read takes one sample. Every part that can be read is filled in; the
// error joins the parts that could not.
func (r Reader) Read() (Usage, error) {
	var u Usage
	var errs []error
	count, limit := r.CountFDs, r.Rlimit
	if count == nil {
		count = func() (int, error) { return countFDs(r.file("proc/self/fd")) }
	}
	if limit == nil {
		limit = rlimitNofile
	}
	var err error
	if u.FDs, err = count(); err != nil {
		errs = append(errs, fmt.Errorf("counting open files: %w", err))
	}
	if u.FDLimit, err = limit(); err != nil {
		errs = append(errs, fmt.Errorf("RLIMIT_NOFILE: %w", err))
	}
	if u.Files, u.FileMax, err = r.fileNr(); err != nil {
		errs = append(errs, err)
	}
	if err := r.memory(&u); err != nil {
		errs = append(errs, err)
	}
	return u, errors.Join(errs...)
}

func (r Reader) file(name string) string { return path.Join(r.Root, name) }

// countFDs counts the entries of /proc/self/fd. Since Linux 6.2 the
// directory's size is that count, which costs no descriptor and no
// listing; older kernels report 0 and get the listing.
func countFDs(dir string) (int, error) {
	if st, err := os.Stat(dir); err == nil && st.Size() > 0 && isProc(dir) {
		return int(st.Size()), nil
	}
	return listFDs(dir)
}

func listFDs(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if n > 0 && isProc(dir) {
		n-- // the descriptor that lists the directory
	}
	return n, nil
}

func isProc(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == 0x9fa0 // PROC_SUPER_MAGIC
}

func rlimitNofile() (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return int(min(l.Cur, 1<<31)), nil
}

func (r Reader) fileNr() (used, limit int64, err error) {
	b, err := os.ReadFile(r.file("proc/sys/fs/file-nr"))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("file-nr: %q: want three numbers", bytes.TrimSpace(b))
	}
	used, err1 := strconv.ParseInt(f[0], 10, 64)
	limit, err2 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("file-nr: %w", err)
	}
	return used, limit, nil
}

// memory fills in the tightest memory bound: the host, or a cgroup (v2,
// or v1's memory controller) of this process or one of its ancestors
// with a limit below the host's memory.
func (r Reader) memory(u *Usage) error {
	total, avail, err := r.meminfo()
	if err != nil {
		return err
	}
	u.MemUsed, u.MemLimit, u.MemScope = total-min(avail, total), total, "host"
	worst := percent(u.MemUsed, u.MemLimit)
	for _, cg := range r.cgroups() {
		for dir := cg.path; ; dir = path.Dir(dir) {
			used, limit, ok := r.cgroupMemory(cg, dir, total)
			if ok {
				if p := percent(used, limit); p > worst {
					worst = p
					u.MemUsed, u.MemLimit, u.MemScope = used, limit, "cgroup "+dir
				}
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	return nil
}

func (r Reader) meminfo() (total, avail uint64, err error) {
	f, err := os.Open(r.file("proc/meminfo"))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "MemTotal":
			total = v << 10
		case "MemAvailable":
			avail = v << 10
		}
	}
	if total == 0 {
		return 0, 0, errors.New("meminfo: no MemTotal")
	}
	return total, avail, sc.Err()
}

// cgroup is one line of /proc/self/cgroup that bounds memory.
type cgroup struct {
	v1   bool
	path string
}

func (r Reader) cgroups() []cgroup {
	b, err := os.ReadFile(r.file("proc/self/cgroup"))
	if err != nil {
		return nil
	}
	var out []cgroup
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			out = append(out, cgroup{path: parts[2]})
		case strings.Contains(","+parts[1]+",", ",memory,"):
			out = append(out, cgroup{v1: true, path: parts[2]})
		}
	}
	return out
}

// cgroupMemory reads the limit of one cgroup directory and its use, less
// the inactive page cache, as the kernel's own reclaim would see it. A
// cgroup with no limit below the host's memory is not read further.
func (r Reader) cgroupMemory(cg cgroup, dir string, total uint64) (used, limit uint64, ok bool) {
	base, maxFile, curFile, inactive := "sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"
	if cg.v1 {
		base, maxFile, curFile, inactive = "sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
	} else if _, err := os.Stat(r.file("sys/fs/cgroup/cgroup.controllers")); err != nil {
		base = "sys/fs/cgroup/unified" // v2 beside v1 (hybrid)
	}
	at := func(name string) string { return r.file(path.Join(base, dir, name)) }
	limit, err := readUint(at(maxFile))
	if err != nil || limit >= total {
		return 0, 0, false
	}
	used, err = readUint(at(curFile))
	if err != nil {
		return 0, 0, false
	}
	if stat, err := os.ReadFile(at("memory.stat")); err == nil {
		for _, line := range strings.Split(string(stat), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && k == inactive {
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					used -= min(n, used)
				}
			}
		}
	}
	return used, limit, true
}

// readUint reads a file holding one number; "max" (no limit) is an error.
func readUint(name string) (uint64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}
