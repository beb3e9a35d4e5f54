package vrrp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

// v2Settings is a version = 2 instance as config.Parse leaves it, through
// settingsOf: the conversion is part of what is tested.
func v2Settings(t *testing.T, pass string, interval time.Duration) settings {
	t.Helper()
	on := true
	c := config.VRRP{
		Name: "vi1", VRID: 51, Interface: "eth0", Priority: 100, AdvertInterval: config.Duration{Duration: interval},
		Preempt: &on, VIPs: []config.Prefix{{Prefix: netip.MustParsePrefix("192.168.77.10/24")}, {Prefix: netip.MustParsePrefix("192.168.77.11/24")}},
		SourceAddress: config.Addr{IP: netip.MustParseAddr("192.168.77.3")}, Checksum: "rfc5798", GARPRepeat: 5,
		NotifyTimeout: config.Duration{Duration: 10 * time.Second}, Version: 2, AuthPass: pass,
	}
	s, err := settingsOf(&c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestV2ReceiveFilters: a version 2 instance follows keepalived's v2
// adverts that carry its authentication, and drops, counting the reason,
// those of the other version, another auth type or another password.
func TestV2ReceiveFilters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	wrongPass := Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{kaVIP10, kaVIP11}, Version: 2, V2Auth: V2Password("secret13")}
	wrong, err := wrongPass.Encode(kaSrc4, GroupV4, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, pass, payload string
		reason              string // "" accepted, "-" ignored (other VRID)
	}{
		{"password", "secret12", kaV2Pass, ""},
		{"other vrid", "secret12", kaV2Short, "-"},
		{"no auth, we have a password", "secret12", keepalivedV2, ReasonV2AuthType},
		{"another password", "secret12", hexOf(wrong), ReasonV2Password},
		{"VRRPv3", "secret12", keepalivedV4, ReasonVersion},
		{"no auth", "", keepalivedV2, ""},
		{"a password, we have none", "", kaV2Pass, ReasonV2AuthType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := v2Settings(t, tt.pass, time.Second)
			s.name = "vi-" + tt.name
			r := newRig(t, s, nil, m)
			r.in.start()
			r.in.handle(Packet{Src: kaSrc4, Dst: GroupV4, TTL: 255, Payload: mustHex(t, tt.payload)})
			if st := r.in.status(); st.Version != 2 || st.AuthPass != (tt.pass != "") {
				t.Errorf("status: version %d, auth_pass %v", st.Version, st.AuthPass)
			}
			received := counterValue(m.receivedTotal.WithLabelValues(s.name))
			switch tt.reason {
			case "":
				if received != 1 || r.in.status().Master != kaSrc4.String() {
					t.Errorf("not accepted: received %v, master %q", received, r.in.status().Master)
				}
			case "-":
				if received != 0 {
					t.Error("another VRID counted as received")
				}
			default:
				if received != 0 {
					t.Error("a dropped advert counted as received")
				}
				if got := counterValue(m.drops.WithLabelValues(s.name, tt.reason)); got != 1 {
					t.Errorf("drops{reason=%q} = %v, want 1", tt.reason, got)
				}
			}
		})
	}
}

// TestV2Timers: RFC 3768's Skew_Time is (256 - priority) / 256 seconds
// whatever the interval, and the adverts a v2 master sends are
// keepalived's bytes. With advert_int 3, Master_Down_Interval is 9 s +
// 609.375 ms, where v3's rule would give 9 s + 1.828125 s.
func TestV2Timers(t *testing.T) {
	s := v2Settings(t, "abc", 3*time.Second)
	s.vrid, s.vips = 52, []netip.Prefix{netip.MustParsePrefix("192.168.77.20/24")}
	s.priority, s.source = 150, kaSrc4
	r := newRig(t, s, nil, nil)
	r.in.start()
	mdi := 9*time.Second + 106*time.Second/256
	r.clock.Advance(mdi - time.Nanosecond)
	if r.state() != StateBackup {
		t.Fatalf("1ns before %v: %v, want backup", mdi, r.state())
	}
	r.clock.Advance(time.Nanosecond)
	if r.state() != StateMaster {
		t.Fatalf("at %v: %v, want master", mdi, r.state())
	}
	if got := hexOf(r.conn.last().raw); got != kaV2Short {
		t.Errorf("master sent %s, keepalived sends %s", got, kaV2Short)
	}
	r.clock.Advance(3 * time.Second)
	if n := len(r.conn.adverts()); n != 2 {
		t.Errorf("%d adverts 3 s after taking over, want 2", n)
	}
	r.in.shutdown("test")
	if got := hexOf(r.conn.last().raw); got != kaV2ShortResgn {
		t.Errorf("resigning sent %s, keepalived sends %s", got, kaV2ShortResgn)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
