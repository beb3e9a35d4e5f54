package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/lvsd/lvsd/config"
)

// staticConfig is a director on lab0 with one service per VIP.
func staticConfig(t *testing.T, vips ...string) *config.Config {
	t.Helper()
	text := "[director]\ninterface = \"lab0\"\n"
	for i, v := range vips {
		text += fmt.Sprintf("\n[[service]]\nname = \"s%d\"\nvip = %q\nport = 80\n\n  [[service.realserver]]\n  address = \"10.0.0.1:80\"\n", i, v)
	}
	cfg, err := config.Parse("static.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// reloadStatic moves v from old to next as a reload's two parts do.
func reloadStatic(t *testing.T, v *staticVIPs, old, next *config.Config) {
	t.Helper()
	if err := apply(&change{old: old, next: next}, []preparer{v.leaving(), v.arriving()}); err != nil {
		t.Fatal(err)
	}
}

// TestStaticVIPsRetryWhatTheKernelRefused: an add the kernel refuses does
// not refuse the reload (the config is in force by then); the next reload
// adds the VIP again, and a VIP that leaves is removed even if its add
// had failed.
func TestStaticVIPsRetryWhatTheKernelRefused(t *testing.T) {
	addrs := &fakeAddrs{}
	v := &staticVIPs{addrs: addrs, log: slog.New(slog.DiscardHandler)}
	one, two := staticConfig(t, "192.0.2.10"), staticConfig(t, "192.0.2.10", "192.0.2.11")
	if err := v.start(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	addrs.refuse = errors.New("RTNETLINK answers: Cannot allocate memory")
	reloadStatic(t, v, one, two)
	if got := addrs.on("lab0"); len(got) != 1 {
		t.Fatalf("lab0 holds %v, want only the first VIP (the kernel refused the second)", got)
	}
	addrs.refuse = nil
	addrs.changes()
	reloadStatic(t, v, two, two)
	if got, want := addrs.changes(), []string{"add lab0 192.0.2.11/32"}; !slices.Equal(got, want) {
		t.Errorf("the next reload made %q, want %q", got, want)
	}
	reloadStatic(t, v, two, two)
	if got := addrs.changes(); len(got) != 0 {
		t.Errorf("a reload with nothing to do made %q", got)
	}
	reloadStatic(t, v, two, one)
	if got, want := addrs.changes(), []string{"remove lab0 192.0.2.11/32"}; !slices.Equal(got, want) {
		t.Errorf("dropping the second VIP made %q, want %q", got, want)
	}
	if err := v.release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := addrs.on("lab0"); len(got) != 0 {
		t.Errorf("lab0 holds %v after release", got)
	}
}

// TestStaticVIPsNeedAnInterface: a config whose static VIPs have no
// director.interface is refused before anything changes.
func TestStaticVIPsNeedAnInterface(t *testing.T) {
	v := &staticVIPs{addrs: &fakeAddrs{}, log: slog.New(slog.DiscardHandler)}
	next := staticConfig(t, "192.0.2.10")
	next.Director.Interface = ""
	if err := apply(&change{old: next, next: next}, []preparer{v.leaving(), v.arriving()}); err == nil {
		t.Error("static VIPs without director.interface were accepted")
	}
}
