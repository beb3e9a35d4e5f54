package config_test

import (
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

// TestHA checks the defaults and explicit values of resources, weighted
// tracking and sync groups.
func TestHA(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-ha.toml")
	out, in := cfg.VRRP[0], cfg.VRRP[1]
	if out.HoldOff.Duration != 0 || in.HoldOff.Duration != time.Minute {
		t.Errorf("hold_off: explicit 0 is %v, default %v", out.HoldOff, in.HoldOff)
	}
	if out.SyncGroup != "nat" || in.SyncGroup != "nat" || len(cfg.SyncGroups) != 1 {
		t.Errorf("sync group: %q %q %+v", out.SyncGroup, in.SyncGroup, cfg.SyncGroups)
	}
	mp, db := out.Resources[0], out.Resources[1]
	if mp.Timeout.Duration != 10*time.Second || mp.StartTimeout.Duration != 10*time.Second || mp.StopTimeout.Duration != 10*time.Second ||
		mp.MonitorInterval.Duration != 2*time.Second || mp.Fall != 1 || mp.Restarts != 1 || !mp.ExclusiveOn() {
		t.Errorf("myproxy: %+v", mp)
	}
	if db.Timeout.Duration != 20*time.Second || db.StartTimeout.Duration != 20*time.Second || db.StopTimeout.Duration != time.Minute ||
		db.MonitorInterval.Duration != 10*time.Second || db.Fall != 3 || db.Restarts != 0 || db.ExclusiveOn() || len(db.Status) != 0 {
		t.Errorf("db: %+v", db)
	}
	up, ha := out.TrackScripts[0], out.TrackScripts[1]
	if up.Interval.Duration != time.Second || up.Timeout.Duration != time.Second || up.Rise != 1 || up.Fall != 1 || up.Weight != -20 {
		t.Errorf("chk_uplink: %+v", up)
	}
	if ha.Interval.Duration != 5*time.Second || ha.Timeout.Duration != 2*time.Second || ha.Rise != 3 || ha.Fall != 2 || ha.Weight != 0 {
		t.Errorf("chk_ha: %+v", ha)
	}
	if out.TrackInterface[0] != (config.TrackWeight{Name: "eth1", Weight: 10}) || out.TrackService[0] != (config.TrackWeight{Name: "web", Weight: -50}) {
		t.Errorf("weights: %+v %+v", out.TrackInterface, out.TrackService)
	}
}
