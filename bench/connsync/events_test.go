package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/bench/internal/heldconns"
	netlab "github.com/lvsd/lvsd/internal/lab"
)

// TestMain lets the test binary play connsync's roles when heldconns or
// the lab start it as "client" or "echo".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "client" || os.Args[1] == "echo") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The held-connection client as both events benchmarks drive it: it opens
// its connections, reports them all alive, and once their server dies
// reports every one lost, reset rather than silent, at the end of the
// event Measure times.
func TestEventClientReportsPerEvent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace)")
	}
	ns, err := netlab.NewNS(t, "connsync")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const target = "127.0.0.1:8080"
	echo, err := ns.Start(netlab.ProcOptions{}, self, "echo", "-listen", target)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.WaitTCP(target, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	client, err := heldconns.StartEvents(ns.Name, self, target, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Kill()

	r, err := client.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 5 || r.Survivors != 5 || len(r.Lost) != 0 || r.NewFailed != 0 {
		t.Fatalf("nothing happened yet: report %+v, want 5 of 5 held and no new connection failed", r)
	}

	start := time.Now()
	if err := echo.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e, err := client.Measure(2, "rs", start, echo.Exited)
	if err != nil {
		t.Fatal(err)
	}
	if e.Trial != 2 || e.Event != "rs" || e.Err != "" || e.TookMS < 0 || e.TookMS > 10_000 {
		t.Errorf("event %+v, want trial 2, rs, done within 10 s", e)
	}
	if got := e.Report; got.Total != 5 || got.Survivors != 0 || len(got.Lost) != 5 || got.Timeouts != 0 || got.Refilled != 0 || got.NewFailed == 0 {
		t.Errorf("server killed: report %+v, want all 5 lost by reset, none refilled, new connections failing", got)
	}
}
