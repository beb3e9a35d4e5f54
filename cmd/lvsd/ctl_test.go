package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lvsd/lvsd/internal/control"
	"github.com/lvsd/lvsd/internal/status"
)

// fakeLvsd answers the control API as a running lvsd would, and records
// what it was asked. The daemon itself is tested in internal/daemon; these
// tests are about the command line: arguments, output and exit codes.
type fakeLvsd struct {
	mu     sync.Mutex
	calls  []string
	refuse error // every verb fails with it when set
	report status.Report
}

func (f *fakeLvsd) Status(context.Context) status.Report { return f.report }

func (f *fakeLvsd) verb(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.refuse
}

func (f *fakeLvsd) Drain(service, realserver string, on bool) error {
	return f.verb(fmt.Sprintf("drain %s %s %v", service, realserver, on))
}
func (f *fakeLvsd) Takeover(instance string) error { return f.verb("takeover " + instance) }
func (f *fakeLvsd) Giveup(instance string) error   { return f.verb("giveup " + instance) }
func (f *fakeLvsd) Reset(instance string) error    { return f.verb("reset " + instance) }
func (f *fakeLvsd) Reload() error                  { return f.verb("reload") }

// serve puts f on a control socket and returns its path.
func (f *fakeLvsd) serve(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lvsd.sock")
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control.Handler(f, false)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e strings.Builder
	code = dispatch(args, &o, &e)
	return code, o.String(), e.String()
}

func TestControlVerbs(t *testing.T) {
	f := &fakeLvsd{}
	sock := f.serve(t)
	for _, tc := range []struct {
		args []string
		call string
	}{
		{[]string{"drain", "web", "10.0.0.1:80"}, "drain web 10.0.0.1:80 true"},
		{[]string{"undrain", "web", "10.0.0.1:80"}, "drain web 10.0.0.1:80 false"},
		{[]string{"takeover", "vi1"}, "takeover vi1"},
		{[]string{"giveup", "vi1"}, "giveup vi1"},
		{[]string{"reset", "vi1"}, "reset vi1"},
		{[]string{"reload"}, "reload"},
		// Names that are not URL-safe reach lvsd as they were typed.
		{[]string{"drain", "tcp/192.0.2.10:80", "[2001:db8::1]:80"}, "drain tcp/192.0.2.10:80 [2001:db8::1]:80 true"},
	} {
		args := append([]string{tc.args[0], "-socket", sock}, tc.args[1:]...)
		code, out, errOut := run(args...)
		if code != 0 || out != tc.args[0]+": ok\n" || errOut != "" {
			t.Errorf("lvsd %v: exit %d, %q %q; want exit 0 and %q", tc.args, code, out, errOut, tc.args[0]+": ok")
		}
		f.mu.Lock()
		if len(f.calls) == 0 || f.calls[len(f.calls)-1] != tc.call {
			t.Errorf("lvsd %v: lvsd heard %v, want %q last", tc.args, f.calls, tc.call)
		}
		f.mu.Unlock()
	}

	// lvsd refuses: exit 1, its reason on stderr, nothing on stdout.
	f.refuse = errors.New(`no realserver "192.0.2.99:80" in service "web"`)
	code, out, errOut := run("drain", "-socket", sock, "web", "192.0.2.99:80")
	if code != 1 || out != "" || errOut != "lvsd drain: no realserver \"192.0.2.99:80\" in service \"web\"\n" {
		t.Errorf("a refused drain: exit %d, %q %q", code, out, errOut)
	}
	f.refuse = errors.New("lvsd.toml:12: weight: want an integer")
	if code, out, errOut := run("reload", "-socket", sock); code != 1 || out != "" || !strings.Contains(errOut, "lvsd.toml:12: weight") {
		t.Errorf("a rejected reload: exit %d, %q %q", code, out, errOut)
	}

	// Wrong arguments: usage, exit 2, lvsd not asked.
	f.mu.Lock()
	before := len(f.calls)
	f.mu.Unlock()
	for _, args := range [][]string{{"drain", "-socket", sock, "web"}, {"takeover", "-socket", sock}, {"reload", "-socket", sock, "now"}} {
		if code, _, errOut := run(args...); code != 2 || !strings.Contains(errOut, "usage: lvsd "+args[0]) {
			t.Errorf("lvsd %v: exit %d, %q; want usage and exit 2", args, code, errOut)
		}
	}
	f.mu.Lock()
	if len(f.calls) != before {
		t.Errorf("lvsd was asked %v for wrong arguments", f.calls[before:])
	}
	f.mu.Unlock()
}

func TestStatusCommand(t *testing.T) {
	f := &fakeLvsd{report: status.Report{Node: "lab-node", Config: "/etc/lvsd/lvsd.toml", Version: "v1",
		Services: []status.Service{{Name: "web", Address: "tcp/192.0.2.10:80", Scheduler: "wlc", InKernel: true,
			RealServers: []status.RealServer{{Address: "10.0.0.1:80", Health: "up", Weight: 5, KernelWeight: 5}}}},
		VRRP: []status.Instance{{Name: "vi1", VRID: 51, Interface: "eth0", State: "master", Priority: 150, MasterPriority: 150, VIPs: []string{"192.0.2.10/32"}}}}}
	sock := f.serve(t)

	code, out, errOut := run("status", "-socket", sock, "-json")
	var st status.Report
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &st) != nil || st.Node != "lab-node" || st.RealServer("web", "10.0.0.1:80") == nil {
		t.Errorf("lvsd status -json: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = run("status", "-socket", sock)
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "lvsd v1 on lab-node, config /etc/lvsd/lvsd.toml") {
		t.Fatalf("lvsd status: exit %d, %q %q", code, out, errOut)
	}
	for _, want := range [][]string{
		{"vi1", "51", "eth0", "master", "150", "150", "-", "192.0.2.10/32"},
		{"web", "tcp/192.0.2.10:80", "wlc"},
		{"->", "10.0.0.1:80", "up", "5", "5", "0", "0"},
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
				found = true
			}
		}
		if !found {
			t.Errorf("lvsd status has no row starting %q:\n%s", want, out)
		}
	}
}
