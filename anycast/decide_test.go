package anycast

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/lvsd/lvsd/config"
)

func TestVIPsOf(t *testing.T) {
	src := `
[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "mh"
forwarding = "dr"
announce = true

[[service]]
name = "plain"
vip = "192.0.2.20"
port = 80

[[service]]
name = "dns6"
vip = "2001:db8::53"
port = 53
protocol = "udp"
scheduler = "mh"
forwarding = "dr"
announce = true

[[service]]
name = "web-tls"
vip = "192.0.2.10"
port = 443
scheduler = "mh"
forwarding = "dr"
announce = true
`
	cfg, err := config.Parse("vips.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []VIP{
		{netip.MustParsePrefix("192.0.2.10/32"), []string{"web", "web-tls"}},
		{netip.MustParsePrefix("2001:db8::53/128"), []string{"dns6"}},
	}
	if got := VIPsOf(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("VIPsOf =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecide(t *testing.T) {
	web := VIP{netip.MustParsePrefix("192.0.2.10/32"), []string{"web", "web-tls"}}
	dns := VIP{netip.MustParsePrefix("192.0.2.53/32"), []string{"dns"}}
	ready := Readiness{Ready: true}
	below := Readiness{Why: "below quorum: 1 of 3 real servers up, quorum 2"}
	type want struct {
		announce bool
		reason   string
	}
	for _, tc := range []struct {
		name string
		in   Inputs
		want []want
	}{
		{"all ready", Inputs{Services: map[string]Readiness{"web": ready, "web-tls": ready, "dns": ready}},
			[]want{{true, "serving: web, web-tls"}, {true, "serving: dns"}}},
		{"one service of a shared vip below quorum: the vip goes, the other stays",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": below, "dns": ready}},
			[]want{{false, "web-tls: below quorum: 1 of 3 real servers up, quorum 2"}, {true, "serving: dns"}}},
		{"a service the director does not report is not announced",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": ready}},
			[]want{{true, "serving: web, web-tls"}, {false, "dns: no state from the director"}}},
		{"tracked vrrp backup or master: fine",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": ready, "dns": ready},
				VRRP: map[string]string{"a": "backup", "b": "master"}, Track: []string{"a", "b"}},
			[]want{{true, "serving: web, web-tls"}, {true, "serving: dns"}}},
		{"tracked vrrp in fault withdraws everything",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": below, "dns": ready},
				VRRP: map[string]string{"a": "fault", "b": "master"}, Track: []string{"a", "b"}},
			[]want{{false, "vrrp[a] is fault"}, {false, "vrrp[a] is fault"}}},
		{"tracked vrrp not started yet",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": ready, "dns": ready},
				VRRP: map[string]string{"b": "init"}, Track: []string{"a", "b"}},
			[]want{{false, "vrrp[a] has not started; vrrp[b] is init"}, {false, "vrrp[a] has not started; vrrp[b] is init"}}},
		{"untracked vrrp in fault changes nothing",
			Inputs{Services: map[string]Readiness{"web": ready, "web-tls": ready, "dns": ready},
				VRRP: map[string]string{"a": "fault"}},
			[]want{{true, "serving: web, web-tls"}, {true, "serving: dns"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide([]VIP{web, dns}, tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("%d decisions, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].Announce != w.announce || got[i].Reason != w.reason {
					t.Errorf("%s: announce %v (%q), want %v (%q)", got[i].VIP, got[i].Announce, got[i].Reason, w.announce, w.reason)
				}
			}
			if got[0].VIP != web.Prefix || !reflect.DeepEqual(got[0].Services, web.Services) {
				t.Errorf("decision 0 is for %v %v", got[0].VIP, got[0].Services)
			}
		})
	}
}
