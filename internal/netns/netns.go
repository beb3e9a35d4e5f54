// Package netns runs code inside a Linux network namespace. The director
// opens IPVS tables of named namespaces with it, and the tests, benches and
// demo build their labs with it.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the namespace at path
// ("/run/netns/NAME", or "" for the current namespace). Sockets and
// /proc/sys/net files fn opens belong to that namespace; goroutines fn
// starts do not run in it.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so the
		// runtime throws it away when this goroutine ends.
		return fmt.Errorf("leave network namespace %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Path is where iproute2 (and lvsd's labs) mount the namespace called name.
func Path(name string) string { return "/run/netns/" + name }
