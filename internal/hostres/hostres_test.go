package hostres

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree writes files (path -> content) under a fresh root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo16G = "MemTotal:       16777216 kB\nMemFree:         1000000 kB\nMemAvailable:   12582912 kB\n"

func fds(open, limit int) (func() (int, error), func() (int, error)) {
	return func() (int, error) { return open, nil }, func() (int, error) { return limit, nil }
}

func TestFault(t *testing.T) {
	// A host with memory and file handles to spare; each case adds files
	// or replaces them to make its point.
	host := map[string]string{"proc/meminfo": meminfo16G, "proc/sys/fs/file-nr": "1000\t0\t100000\n"}
	for _, tc := range []struct {
		name   string
		files  map[string]string // over host's
		open   int
		limits Limits
		want   string
	}{{
		name:   "healthy",
		open:   100,
		limits: Limits{90, 90},
		want:   "",
	}, {
		name:   "the process near its RLIMIT_NOFILE",
		open:   930,
		limits: Limits{90, 90},
		want:   "fds: 930 of 1024 open files in use (90%, RLIMIT_NOFILE)",
	}, {
		name:   "file descriptors not watched",
		files:  map[string]string{"proc/sys/fs/file-nr": "99000\t0\t100000\n"},
		open:   1024,
		limits: Limits{0, 90},
		want:   "",
	}, {
		name:   "the host near fs.file-max",
		files:  map[string]string{"proc/sys/fs/file-nr": "95000\t0\t100000\n"},
		open:   10,
		limits: Limits{90, 90},
		want:   "fds: 95000 of 100000 file handles in use on the host (95%, fs.file-max)",
	}, {
		name:   "the host short of memory",
		files:  map[string]string{"proc/meminfo": "MemTotal: 16777216 kB\nMemAvailable: 838860 kB\n"},
		limits: Limits{90, 90},
		want:   "memory: 15564 MiB of 16384 MiB in use (95%, host)",
	}, {
		name: "a cgroup v2 limit, page cache not counted",
		files: map[string]string{
			"proc/self/cgroup":                                       "0::/system.slice/lvsd.service\n",
			"sys/fs/cgroup/cgroup.controllers":                       "cpu memory\n",
			"sys/fs/cgroup/system.slice/memory.max":                  "max\n",
			"sys/fs/cgroup/system.slice/memory.current":              "4294967296\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.max":     "1073741824\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.current": "1048576000\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.stat":    "anon 900000000\ninactive_file 52428800\nactive_file 1\n",
		},
		limits: Limits{90, 90},
		want:   "memory: 950 MiB of 1024 MiB in use (92%, cgroup /system.slice/lvsd.service)",
	}, {
		name: "a cgroup v2 limit, mostly page cache: fine",
		files: map[string]string{
			"proc/self/cgroup":                                       "0::/system.slice/lvsd.service\n",
			"sys/fs/cgroup/cgroup.controllers":                       "cpu memory\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.max":     "1073741824\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.current": "1048576000\n",
			"sys/fs/cgroup/system.slice/lvsd.service/memory.stat":    "inactive_file 524288000\n",
		},
		limits: Limits{90, 90},
		want:   "",
	}, {
		name: "a limit on the parent slice",
		files: map[string]string{
			"proc/self/cgroup":                                     "0::/lvsd.slice/lvsd.service\n",
			"sys/fs/cgroup/cgroup.controllers":                     "cpu memory\n",
			"sys/fs/cgroup/lvsd.slice/memory.max":                  "2147483648\n",
			"sys/fs/cgroup/lvsd.slice/memory.current":              "2040109465\n",
			"sys/fs/cgroup/lvsd.slice/lvsd.service/memory.max":     "max\n",
			"sys/fs/cgroup/lvsd.slice/lvsd.service/memory.current": "1000\n",
		},
		limits: Limits{90, 90},
		want:   "memory: 1945 MiB of 2048 MiB in use (94%, cgroup /lvsd.slice)",
	}, {
		name: "a cgroup v1 memory controller; no limit is a huge number",
		files: map[string]string{
			"proc/self/cgroup":                                "5:cpu,cpuacct:/\n4:memory:/lvsd\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":      "9223372036854771712\n",
			"sys/fs/cgroup/memory/memory.usage_in_bytes":      "9000000000\n",
			"sys/fs/cgroup/memory/lvsd/memory.limit_in_bytes": "536870912\n",
			"sys/fs/cgroup/memory/lvsd/memory.usage_in_bytes": "530000000\n",
			"sys/fs/cgroup/memory/lvsd/memory.stat":           "inactive_file 1\ntotal_inactive_file 10000000\n",
		},
		limits: Limits{90, 90},
		want:   "memory: 495 MiB of 512 MiB in use (96%, cgroup /lvsd)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			files := maps.Clone(host)
			maps.Copy(files, tc.files)
			count, limit := fds(tc.open, 1024)
			u, err := Reader{Root: tree(t, files), CountFDs: count, Rlimit: limit}.Read()
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Fault(tc.limits); got != tc.want {
				t.Errorf("Fault = %q, want %q (usage %+v)", got, tc.want, u)
			}
		})
	}
}

// Parts that cannot be read are named; the rest is still filled in.
func TestReadNamesWhatIsMissing(t *testing.T) {
	count, limit := fds(5, 1024)
	u, err := Reader{Root: tree(t, map[string]string{"proc/meminfo": meminfo16G}), CountFDs: count, Rlimit: limit}.Read()
	if err == nil || !strings.Contains(err.Error(), "file-nr") {
		t.Errorf("err = %v, want file-nr named", err)
	}
	if u.FDs != 5 || u.MemLimit != 16<<30 {
		t.Errorf("usage %+v", u)
	}
}

// The real process: with its descriptors nearly used up, the monitor
// says so, and both ways of counting agree.
func TestThisProcessOutOfFileDescriptors(t *testing.T) {
	r := Reader{Root: "/"}
	u, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if u.FDs <= 0 || u.FDLimit <= 0 || u.MemLimit == 0 || u.FileMax <= 0 {
		t.Fatalf("usage of this process: %+v", u)
	}
	if f := u.Fault(Limits{90, 100}); f != "" {
		t.Fatalf("fault before the test: %q", f)
	}

	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	low := was
	low.Cur = 100
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var filler []*os.File
	defer func() {
		for _, f := range filler {
			f.Close()
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	}()
	for {
		n, err := countFDs("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		if n >= 95 {
			break
		}
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		filler = append(filler, f)
	}
	u, err = r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if f := u.Fault(Limits{90, 100}); !strings.HasPrefix(f, "fds: ") || !strings.Contains(f, "of 100 open files") {
		t.Errorf("Fault = %q, usage %+v; want the process short of file descriptors", f, u)
	}
	stat, _ := countFDs("/proc/self/fd")
	listed, err := listFDs("/proc/self/fd")
	if err != nil || listed != stat {
		t.Errorf("listing counts %d (%v), stat %d", listed, err, stat)
	}
}
