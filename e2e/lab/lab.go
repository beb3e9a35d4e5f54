// Package lab is internal/lab for tests: its namespaces and processes,
// with methods that fail the test instead of returning errors, and helpers
// that find the binaries tests run. Tests that need the kernel's IPVS call
// RequireIPVS, so on a host without it they skip; `make e2e` runs them inside
// a VM whose kernel has IPVS (see e2e/vm/run.sh).
//
// A typical test:
//
//	lab.RequireIPVS(t)
//	client, director := lab.NewNS(t, "client"), lab.NewNS(t, "dir")
//	client.Veth("eth0", director, "eth0")
//	client.Addr("eth0", "10.0.0.2/24")
//	director.Addr("eth0", "10.0.0.1/24")
//	director.Run("ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", "rr")
//
// Everything a test creates is removed by t.Cleanup. Namespace names carry
// the checkout's name and the test binary's pid, so parallel runs never collide.
package lab

import (
	"os"
	"path/filepath"
	"testing"

	ilab "github.com/lvsd/lvsd/internal/lab"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces); run `make e2e`")
	}
}

// HasIPVS reports whether the kernel has IPVS loaded in the current network
// namespace. The file exists only when the ip_vs module is loaded (or built in).
func HasIPVS() bool {
	_, err := os.Stat("/proc/net/ip_vs")
	return err == nil
}

// RequireIPVS skips the test unless it runs as root on a kernel with IPVS.
func RequireIPVS(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if !HasIPVS() {
		t.Skip("kernel has no IPVS; run `make e2e`")
	}
}

// InVM reports whether the test runs inside the e2e VM (e2e/vm/run.sh).
func InVM() bool { return os.Getenv("LVSD_IN_VM") == "1" }

// RepoRoot returns the root of the lvsd repository: the nearest directory,
// from the working directory up, whose go.mod declares the lvsd module.
// `go test` runs in the package directory and `make e2e` in the root; both work.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, ok := ilab.RepoRoot()
	if !ok {
		t.Fatalf("lab: no lvsd go.mod above the working directory")
	}
	return root
}

// Bin returns the path of bin/NAME at the repository root, built by `make build`.
func Bin(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(RepoRoot(t), "bin", name)
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("lab: %s is missing or not executable: run `make build`", path)
	}
	return path
}
