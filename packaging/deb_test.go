// Package packaging holds the Debian package's build (deb/build.sh), the man
// page generator (genman) and the test that installs and purges the package.
package packaging

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

var deb = flag.String("deb", "", "the .deb to install and purge (`make deb-test` builds it)")

// TestDebianPackage installs the package with dpkg -i, runs lvsd from it,
// then purges it and checks that nothing it installed is left.
func TestDebianPackage(t *testing.T) {
	if *deb == "" {
		t.Skip("no -deb PACKAGE: `make deb-test` builds the package and runs this test")
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg -i needs root")
	}
	if busy, why := dpkgBusy(); busy {
		t.Skipf("dpkg is busy: %s", why)
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "lvsd").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Skip("an lvsd package is already installed here; the test will not replace it")
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("dpkg", "-i", *deb)
	purged := false
	defer func() {
		if !purged {
			exec.Command("dpkg", "--purge", "lvsd").Run()
		}
	}()

	files := strings.Fields(run("dpkg-query", "-L", "lvsd"))
	for _, want := range []string{"/usr/sbin/lvsd", "/etc/lvsd/lvsd.toml", "/lib/systemd/system/lvsd.service",
		"/usr/share/man/man8/lvsd.8.gz", "/usr/share/man/man5/lvsd.toml.5.gz", "/usr/share/bash-completion/completions/lvsd"} {
		if _, err := os.Stat(want); err != nil {
			t.Errorf("installed package lacks %s: %v", want, err)
		}
	}
	if conf := run("dpkg-query", "-W", "-f=${Conffiles}", "lvsd"); !strings.Contains(conf, "/etc/lvsd/lvsd.toml") {
		t.Errorf("/etc/lvsd/lvsd.toml is not a conffile: %q", conf)
	}
	t.Logf("lvsd version: %s", strings.TrimSpace(run("/usr/sbin/lvsd", "version")))
	t.Logf("lvsd check: %s", strings.TrimSpace(run("/usr/sbin/lvsd", "check", "-config", "/etc/lvsd/lvsd.toml")))
	if unit := run("cat", "/lib/systemd/system/lvsd.service"); !strings.Contains(unit, "ExecStart=/usr/sbin/lvsd run") {
		t.Errorf("the unit does not start /usr/sbin/lvsd:\n%s", unit)
	}
	if out, err := exec.Command("man", "-w", "5", "lvsd.toml").CombinedOutput(); err != nil {
		t.Logf("man -w 5 lvsd.toml: %v %s (man-db may be absent)", err, out)
	}

	run("dpkg", "--purge", "lvsd")
	purged = true
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "lvsd").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Errorf("still installed after purge: %s", out)
	}
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() {
			t.Errorf("left behind after purge: %s", f)
		} else if strings.Contains(f, "lvsd") {
			t.Errorf("directory left behind after purge: %s", f)
		}
	}
}

// dpkgBusy tries dpkg's own lock (an fcntl lock on lock-frontend).
func dpkgBusy() (bool, string) {
	f, err := os.OpenFile("/var/lib/dpkg/lock-frontend", os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return true, err.Error()
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return true, "another dpkg or apt holds /var/lib/dpkg/lock-frontend"
		}
		return true, err.Error()
	}
	lk.Type = syscall.F_UNLCK
	syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	return false, ""
}
