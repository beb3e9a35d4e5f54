// Package lab builds networks of Linux network namespaces for the e2e tests,
// the demo and the benchmarks: namespaces with unique names, veth pairs,
// bridges, addresses, routes, netem, packet captures with kernel
// timestamps, and processes that run inside a namespace in a process group
// of their own.
//
// Everything it creates is handed to a Cleaner to undo, last created first.
// *testing.T is a Cleaner; a program uses a *Lab and calls its Close:
//
//	l := &lab.Lab{}
//	defer l.Close()
//	sw, err := lab.NewNS(l, "sw")
//	...
//	d1, err := lab.NewNS(l, "d1")
//	err = d1.Plug(sw, "br0", "p1") // d1's eth0 on sw's bridge br0
//	err = d1.Addr("eth0", "10.9.0.1/24")
//	p, err := d1.Start(lab.ProcOptions{Log: "d1.log"}, "lvsd", "run", "-config", "d1.toml")
//
// Several labs run on one machine at once (other checkouts, other test
// binaries), so every namespace gets a name no other run can take: the
// checkout's name, the creating process's pid and a counter.
package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Cleaner takes functions to run when the lab is torn down, last added
// first. testing.TB satisfies it.
type Cleaner interface {
	Cleanup(fn func())
}

// Lab is the Cleaner of a program: Close runs what was registered, last
// first.
type Lab struct {
	mu  sync.Mutex
	fns []func()
}

// Cleanup registers fn to run at Close.
func (l *Lab) Cleanup(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fns = append(l.fns, fn)
}

// Close runs every registered function, last registered first. Functions
// registered while it runs run too; calling it again runs only those
// registered since.
func (l *Lab) Close() {
	for {
		l.mu.Lock()
		if len(l.fns) == 0 {
			l.mu.Unlock()
			return
		}
		fn := l.fns[len(l.fns)-1]
		l.fns = l.fns[:len(l.fns)-1]
		l.mu.Unlock()
		fn()
	}
}

// tag says whose namespaces these are: $LVSD_LAB_TAG, else the name of
// the lvsd checkout the program runs in (a worktree /work/wt/stress gives
// "stress"), else "x". Only letters and digits, so a name splits on '-'.
var tag = sync.OnceValue(func() string {
	t := os.Getenv("LVSD_LAB_TAG")
	if t == "" {
		if root, ok := RepoRoot(); ok {
			t = filepath.Base(root)
		}
	}
	return cleanTag(t)
})

func cleanTag(t string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
		if b.Len() == 10 {
			break
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// RepoRoot returns the root of the lvsd repository: the nearest directory,
// from the working directory up, whose go.mod declares the lvsd module.
// `go test` runs in the package directory, make and the VM in the root;
// both find it.
func RepoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/lvsd/lvsd\n")) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
