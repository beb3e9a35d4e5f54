package director

import (
	"errors"
	"testing"
)

// LVSD_IPVS_BACKEND=memory runs the director on a host without IPVS: the
// preflight accepts it and the "kernel" is an empty in-memory table.
func TestMemoryBackendStandsInForTheKernel(t *testing.T) {
	t.Setenv("LVSD_IPVS_BACKEND", "memory")
	c := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80"))
	c.Director.Interface = "lo"
	if err := Preflight(c); errors.Is(err, ErrNoIPVS) {
		t.Fatalf("preflight refuses the memory backend: %v", err)
	}
	k, err := OpenKernel()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, ok := k.(*Fake); !ok {
		t.Fatalf("OpenKernel gave %T, want the in-memory *Fake", k)
	}
	t.Setenv("LVSD_IPVS_BACKEND", "")
	if err := Preflight(c); !HasIPVS() && !errors.Is(err, ErrNoIPVS) {
		t.Fatalf("without the memory backend a host with no IPVS passes preflight: %v", err)
	}
}
