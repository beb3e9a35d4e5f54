package vrrppair

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

// A signed pair's lvsd config is one lvsd accepts, signing with AuthKey in
// enforce mode.
func TestLvsdConfigAuth(t *testing.T) {
	o := Options{Interval: 100 * time.Millisecond, Auth: true}
	text := LvsdConfig(o, 200, "/run/x.sock")
	cfg, err := config.Parse("pair.toml", []byte(text))
	if err != nil {
		t.Fatalf("lvsd refuses the signed pair's config: %v\n%s", err, text)
	}
	a := cfg.VRRP[0].Auth
	if a == nil || a.Mode != "enforce" || a.AntiReplay != "time" || a.ActiveKey != 1 || len(a.Keys) != 1 {
		t.Fatalf("auth %+v\n%s", a, text)
	}
	o.Auth = false
	if cfg, err := config.Parse("pair.toml", []byte(LvsdConfig(o, 200, "/run/x.sock"))); err != nil || cfg.VRRP[0].Auth != nil {
		t.Fatalf("unsigned pair: auth %+v, %v", cfg.VRRP[0].Auth, err)
	}
}

// keepalived's auth_hmac block sits inside the instance.
func TestKeepalivedConfigAuth(t *testing.T) {
	conf := KeepalivedConfig(Options{Interval: 100 * time.Millisecond, Auth: true}, 100)
	i, j := strings.Index(conf, "vrrp_instance vi1 {"), strings.Index(conf, "auth_hmac {")
	if i < 0 || j < i || !strings.Contains(conf, "key 1 hex:"+AuthKey) || !strings.HasSuffix(conf, "  }\n}\n") {
		t.Fatalf("auth_hmac not inside the instance:\n%s", conf)
	}
	if strings.Contains(KeepalivedConfig(Options{Interval: 100 * time.Millisecond}, 100), "auth_hmac") {
		t.Fatal("unsigned pair with auth_hmac")
	}
}

// Debian's keepalived 2.2 has no auth_hmac: a signed pair refuses it
// rather than measure it unsigned.
func TestKeepalivedSignsNeeds24(t *testing.T) {
	if _, err := exec.LookPath("/usr/sbin/keepalived"); err != nil {
		t.Skip("no /usr/sbin/keepalived")
	}
	if err := keepalivedSigns("/usr/sbin/keepalived"); err == nil || !strings.Contains(err.Error(), "needs 2.4.0") {
		t.Errorf("keepalived 2.2: %v", err)
	}
	const ka24 = "/work/shared/peers/keepalived-2.4.3/keepalived"
	if _, err := os.Stat(ka24); err == nil {
		if err := keepalivedSigns(ka24); err != nil {
			t.Errorf("keepalived 2.4.3: %v", err)
		}
	}
}
