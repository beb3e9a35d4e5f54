// Command lvsd-demo is what `make demo` runs: a pair of lvsd directors in
// front of three web servers and a DNS server, built from network
// namespaces, and a narrated tour of what the pair does when things break.
//
// Where the kernel has IPVS the lab runs right here; elsewhere lvsd-demo
// boots the qemu VM of the end-to-end tests (e2e/vm/run.sh) and runs itself
// inside it. Exit status 0 means every step behaved; 1 means one did not.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	ilab "github.com/lvsd/lvsd/internal/lab"
)

func main() {
	os.Exit(run())
}

func run() int {
	where := flag.String("run", "auto", "where to build the lab: here (network namespaces on this kernel, which needs IPVS), vm (inside the e2e qemu VM), or auto (here if /proc/net/ip_vs exists, else vm)")
	repo := flag.String("repo", "", "lvsd repository (default: found from the working directory)")
	binDir := flag.String("bin", "", "directory with lvsd and testserver (default: REPO/bin, where `make build` puts them)")
	vmTimeout := flag.Int("vm-timeout", 300, "seconds the VM may run before it is killed")
	flag.Parse()

	root, err := findRepo(*repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	}
	bin := *binDir
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	}
	switch *where {
	case "auto":
		if hasIPVS() {
			return runHere(root, bin)
		}
		fmt.Println("lvsd-demo: this kernel has no IPVS (no /proc/net/ip_vs): running the lab inside the qemu VM (e2e/vm/run.sh)")
		return runInVM(root, bin, *vmTimeout)
	case "here":
		return runHere(root, bin)
	case "vm":
		return runInVM(root, bin, *vmTimeout)
	}
	fmt.Fprintf(os.Stderr, "lvsd-demo: -run %q: want auto, here or vm\n", *where)
	return 2
}

func hasIPVS() bool {
	_, err := os.Stat("/proc/net/ip_vs")
	return err == nil
}

// findRepo returns dir, or the nearest directory from the working directory
// up whose go.mod is lvsd's.
func findRepo(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/lvsd/lvsd\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the lvsd repository (give -repo)")
		}
		dir = parent
	}
}

// runInVM runs this same binary with -run here inside the VM, which sees
// the host's files read-only, so bin/ and examples/ are where they are here.
func runInVM(root, bin string, timeout int) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	}
	cmd := exec.Command(filepath.Join(root, "e2e", "vm", "run.sh"), "-timeout", fmt.Sprint(timeout), "--",
		self, "-run", "here", "-repo", root, "-bin", bin)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "lvsd-demo: e2e/vm/run.sh:", err)
		return 2
	}
	return 0
}

// runHere builds the lab in network namespaces of this kernel, runs the
// tour and tears everything down again, also when interrupted.
func runHere(root, bin string) int {
	n := &narrator{}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lvsd-demo: must run as root (network namespaces, IPVS)")
		return 2
	}
	if !hasIPVS() {
		fmt.Fprintln(os.Stderr, "lvsd-demo: this kernel has no IPVS (/proc/net/ip_vs); use -run vm")
		return 2
	}
	for _, p := range []string{filepath.Join(bin, "lvsd"), filepath.Join(bin, "testserver")} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "lvsd-demo: %s is missing: run `make build`\n", p)
			return 2
		}
	}
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo: dnsmasq is not installed: run `make deps`")
		return 2
	}
	// One demo per machine: the directors' control sockets and the
	// namespaces have fixed names.
	lock, err := os.OpenFile("/run/lvsd-demo.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo: another demo is running on this machine (/run/lvsd-demo.lock):", err)
		return 2
	}
	defer lock.Close()
	if left, err := ilab.RemoveLeftovers(); err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	} else if len(left) > 0 {
		n.say("removed namespaces that killed runs left behind: %v", left)
	}
	logDir, err := os.MkdirTemp("", "lvsd-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	}
	examples := filepath.Join(root, "examples")
	l, err := plan(bin, logDir, n, [2]string{filepath.Join(examples, "pair-a.toml"), filepath.Join(examples, "pair-b.toml")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsd-demo:", err)
		return 2
	}

	var once sync.Once
	cleanup := func() { once.Do(l.teardown) }
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		n.say("%v: stopping and removing the lab", sig)
		cleanup()
		os.Exit(130)
	}()

	ok := tour(l)
	if !ok {
		for _, d := range l.dirs {
			if d.lvsd != nil {
				n.say("last lines of %s's log (%s):\n%s", d.name, d.lvsd.Log, indent(d.lvsd.Tail(25)))
			}
		}
	}
	cleanup()
	n.say("lab removed (namespaces and processes); logs are in %s", logDir)
	if !ok {
		n.say("demo FAILED:")
		for _, f := range n.failures() {
			fmt.Println("  - " + f)
		}
		return 1
	}
	n.say("demo OK: every step behaved")
	n.say("%s", pageAddress(l))
	return 0
}

// narrator prints the demo's timestamped lines and remembers what failed.
type narrator struct {
	mu     sync.Mutex
	failed []string
}

func (n *narrator) sayAt(t time.Time, format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Printf("%s  %s\n", t.Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (n *narrator) say(format string, args ...any) { n.sayAt(time.Now(), format, args...) }

// fail prints and records a step that misbehaved; the demo goes on where it
// can and exits 1 at the end.
func (n *narrator) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.say("FAIL: %s", msg)
	n.mu.Lock()
	n.failed = append(n.failed, msg)
	n.mu.Unlock()
}

func (n *narrator) failures() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.failed...)
}

func indent(s string) string {
	return "    " + string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte("\n    ")))
}
