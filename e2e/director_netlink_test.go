package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/e2e/lab"
)

// TestDirectorKernelBatchErrors: the kernel answers only a batch's last
// request unless one fails, so each failure must still land on its own op
// (in the middle of a batch, on either side of a batch boundary, at the
// very end) while every other op of the same batches is applied.
func TestDirectorKernelBatchErrors(t *testing.T) {
	lab.RequireIPVS(t)
	dir := lab.NewNS(t, "dir")
	dir.Link("add", "dummy0", "type", "dummy")
	dir.Run("ip", "link", "set", "dummy0", "up")
	dir.Addr("dummy0", "10.1.0.1/16")
	k, err := director.OpenKernelAt("/run/netns/" + dir.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	svc := func(i int, sched string) director.Service {
		return director.Service{Key: director.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
			Addr: netip.AddrFrom4([4]byte{10, 70, byte(i / 250), byte(1 + i%250)}), Port: 80}, Scheduler: sched, Netmask: 32}
	}
	dest := func(j int) director.Dest {
		return director.Dest{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 1, byte(10 + j)}), 80), Weight: 1}
	}
	// 300 ops: services 0..29, each followed by nine destinations.
	var ops []director.Op
	for i := range 30 {
		ops = append(ops, director.Op{Kind: director.OpNewService, Service: svc(i, "wlc")})
		for j := range 9 {
			ops = append(ops, director.Op{Kind: director.OpNewDest, Service: svc(i, "wlc"), Dest: dest(j)})
		}
	}
	// Failures the kernel reports, placed around the batch boundaries at
	// 128 and 256 and at the end.
	want := map[int]error{}
	fail := func(at int, op director.Op, err error) {
		ops[at], want[at] = op, err
	}
	dup := func(i int) director.Op { // the destination the op before made
		return director.Op{Kind: director.OpNewDest, Service: svc(i, "wlc"), Dest: dest(0)}
	}
	fail(2, dup(0), unix.EEXIST)
	fail(127, director.Op{Kind: director.OpNewDest, Service: svc(99, "wlc"), Dest: dest(0)}, unix.ESRCH) // last of batch 1
	fail(128, dup(12), unix.EEXIST)                                                                      // first of batch 2
	fail(205, director.Op{Kind: director.OpNewService, Service: svc(20, "rr")}, unix.EEXIST)
	fail(255, dup(25), unix.EEXIST) // last of batch 2
	fail(299, dup(29), unix.EEXIST) // the very last op
	errs := k.Apply(context.Background(), ops)
	if len(errs) != len(ops) {
		t.Fatalf("%d errors for %d ops", len(errs), len(ops))
	}
	for i, err := range errs {
		if w, ok := want[i]; ok {
			if !errors.Is(err, w) {
				t.Errorf("op %d (%s): error %v, want %v", i, ops[i], err, w)
			}
		} else if err != nil {
			t.Errorf("op %d (%s): unexpected error %v", i, ops[i], err)
		}
	}

	// Every op that did not fail is in the table, and nothing else.
	expected := map[string]bool{}
	for i, op := range ops {
		if want[i] != nil {
			continue
		}
		switch op.Kind {
		case director.OpNewService:
			expected[op.Service.Key.String()] = true
		case director.OpNewDest:
			expected[fmt.Sprintf("%s -> %s", op.Service.Key, op.Dest.Addr)] = true
		}
	}
	tab, err := k.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range tab {
		got[s.Key.String()] = true
		for _, d := range s.Dests {
			got[fmt.Sprintf("%s -> %s", s.Key, d.Addr)] = true
		}
	}
	for k := range expected {
		if !got[k] {
			t.Errorf("applied op missing from the kernel: %s", k)
		}
	}
	for k := range got {
		if !expected[k] {
			t.Errorf("kernel has %s, which no successful op made", k)
		}
	}
	if t.Failed() {
		t.Log(dir.Run("ipvsadm", "-Ln"))
	}
}
