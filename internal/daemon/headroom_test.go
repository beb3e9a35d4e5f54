package daemon

import (
	"runtime"
	"testing"
)

// TestTimingHeadroom: lvsd run keeps spareProcs Ps beyond the runtime's
// default, and a GOMAXPROCS the operator set is left as it is.
func TestTimingHeadroom(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "")
	if got := KeepTimingHeadroom(); got != before+spareProcs || runtime.GOMAXPROCS(0) != got {
		t.Fatalf("without GOMAXPROCS: %d Ps (runtime says %d); want %d", got, runtime.GOMAXPROCS(0), before+spareProcs)
	}
	runtime.GOMAXPROCS(before)

	t.Setenv("GOMAXPROCS", "3")
	if got := KeepTimingHeadroom(); got != before || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("with GOMAXPROCS set: %d Ps; want the %d in force left alone", got, before)
	}
}
