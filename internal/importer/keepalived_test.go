package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
)

func importString(t *testing.T, conf string) (*Result, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return Keepalived(path, KeepalivedOptions{})
}

const vs = "virtual_server 192.0.2.10 80 {\n%s\n  real_server 10.0.0.1 80 {\n%s\n  }\n}\n"

func vsConf(svc, rs string) string {
	return strings.Replace(strings.Replace(vs, "%s", svc, 1), "%s", rs, 1)
}

// TestKeepalivedKeywords maps one keyword at a time: what the TOML must
// contain, and the note it must give (kind and a word of the reason).
func TestKeepalivedKeywords(t *testing.T) {
	cases := []struct {
		name, conf string
		toml       []string // lines the output must hold
		notes      []string // "line: keyword: kind" prefixes the notes must hold
		complete   bool
	}{
		{"defaults", vsConf("", "TCP_CHECK {\n}"), []string{`interval = "1m"`, `timeout = "5s"`, "rise = 1", "fall = 2", "alpha = false", `scheduler = "wlc"`, `forwarding = "nat"`}, []string{"4: TCP_CHECK: changed"}, true},
		{"lvs_sched and lvs_method", vsConf("lvs_sched sh\nlvs_method DR\nsh-port\nflag-1", ""), []string{`scheduler = "sh"`, `forwarding = "dr"`, `sched_flags = ["sh-port", "sh-fallback"]`}, nil, true},
		{"persistence", vsConf("persistence_timeout 600\npersistence_granularity 255.255.255.0", ""), []string{`persistence = "10m"`, `persistence_netmask = "255.255.255.0"`}, nil, true},
		{"persistence without value", vsConf("persistence_timeout", ""), []string{`persistence = "6m"`}, nil, true},
		{"ops on udp", strings.Replace(vsConf("protocol UDP\nops", ""), " 80", " 53", -1), []string{`one_packet = true`, `protocol = "udp"`}, nil, true},
		{"ops on tcp", vsConf("ops", ""), nil, []string{"2: ops: not carried over"}, false},
		{"quorum and hysteresis", vsConf("quorum 2\nhysteresis 1", "weight 3"), []string{"quorum = 2", "hysteresis = 1", "weight = 3"}, []string{"1: virtual_server: changed"}, true},
		{"sorry_server", vsConf("sorry_server 192.0.2.99 8080", ""), []string{`sorry_server = "192.0.2.99:8080"`}, nil, true},
		{"inhibit_on_failure", vsConf("", "inhibit_on_failure"), []string{`on_failure = "drain"`}, nil, true},
		{"alpha", vsConf("alpha", "TCP_CHECK {\n}"), nil, nil, true},
		{"delay_loop and retry", vsConf("delay_loop 3", "TCP_CHECK {\nretry 4\ndelay_before_retry 3\nconnect_timeout 2\n}"), []string{`interval = "3s"`, `timeout = "2s"`, "fall = 5"}, nil, true},
		{"timeout not below the interval", vsConf("delay_loop 2", "TCP_CHECK {\nconnect_timeout 3\n}"), []string{`interval = "5s"`, `timeout = "3s"`}, []string{"4: TCP_CHECK: changed: interval 5s"}, true},
		{"thresholds", vsConf("", "uthreshold 100\nlthreshold 50"), []string{"upper_threshold = 100", "lower_threshold = 50"}, nil, true},
		{"HTTP_GET status and digest", vsConf("", "HTTP_GET {\nurl {\npath /a\nstatus_code 200-299 302\n}\nurl {\npath /b\ndigest 0123\n}\n}"), []string{`path = "/a"`, `expect_status = ["200-299", "302"]`, `path = "/b"`}, []string{"11: digest: not carried over"}, false},
		{"SSL_GET", vsConf("virtualhost www.example.org", "SSL_GET {\nenable_sni\n}"), []string{`type = "https"`, `host = "www.example.org"`, `tls_server_name = "www.example.org"`, "tls_skip_verify = true"}, nil, true},
		{"MISC_CHECK misc_dynamic", vsConf("", "MISC_CHECK {\nmisc_path \"/usr/bin/check -q\"\nmisc_timeout 3\nmisc_dynamic\n}"), []string{`command = ["/usr/bin/check", "-q"]`, "dynamic_weight = true", `timeout = "3s"`, "fall = 1"}, nil, true},
		{"MISC_CHECK through a shell", vsConf("", "MISC_CHECK {\nmisc_path \"test -f /tmp/up && exit 0\"\nmisc_timeout 3\n}"), []string{`command = ["/bin/sh", "-c", "test -f /tmp/up && exit 0"]`}, []string{"5: misc_path: changed"}, true},
		{"SMTP_CHECK", vsConf("", "SMTP_CHECK {\nhelo_name x\n}"), []string{`expect = "220"`}, []string{"4: SMTP_CHECK: changed"}, true},
		{"DNS_CHECK", vsConf("", "DNS_CHECK {\nname example.org\ntype AAAA\n}"), []string{`query_name = "example.org"`, `query_type = "AAAA"`, "fall = 4"}, nil, true},
		{"PING_CHECK", vsConf("", "PING_CHECK {\nconnect_timeout 2\n}"), []string{`type = "ping"`, `timeout = "2s"`}, nil, true},
		{"UDP_CHECK", vsConf("", "UDP_CHECK {\n}"), []string{`type = "udp"`, `require_reply = false`}, nil, true},
		{"UDP_CHECK payload and reply", vsConf("", "UDP_CHECK {\npayload 0a0B 0c\nrequire_reply 0102\nmax_reply_length 20\n}"),
			[]string{`payload_hex = "0a0b0c"`, `expect_hex = "0102"`}, []string{"6: require_reply: changed: the reply must start", "7: max_reply_length: not carried over"}, false},
		{"UDP_CHECK require_reply", vsConf("", "UDP_CHECK {\nrequire_reply\n}"), []string{`type = "udp"`}, nil, true},
		{"UDP_CHECK masked reply", vsConf("", "UDP_CHECK {\nrequire_reply 01xx\n}"), nil, []string{"5: require_reply: not carried over: \"01xx\" is not plain hex"}, false},
		{"fwmark IPv6", "virtual_server fwmark 7 {\nip_family inet6\nreal_server 2001:db8::1 80 {\n}\n}\n", []string{"fwmark = 7", `family = "inet6"`, `address = "[2001:db8::1]:80"`}, nil, true},
		{"DR cannot change the port", "virtual_server 192.0.2.10 80 {\nlvs_method DR\nreal_server 10.0.0.1 8080 {\nTCP_CHECK {\n}\n}\n}\n", []string{`address = "10.0.0.1"`, "port = 8080"}, []string{"3: real_server: changed"}, true},
		{"virtual_server_group", "virtual_server_group G {\n192.0.2.1-3 80\nfwmark 5\n}\nvirtual_server group G {\nreal_server 10.0.0.1 80 {\n}\n}\n", []string{`vip = "192.0.2.1"`, `vip = "192.0.2.2"`, `vip = "192.0.2.3"`, "fwmark = 5"}, nil, true},
		{"vrrp_instance", "vrrp_instance VI {\nstate BACKUP\ninterface eth0\nvirtual_router_id 7\npriority 150\nadvert_int 0.5\nnopreempt\npreempt_delay 30\nversion 3\nvirtual_ipaddress {\n192.0.2.1/24 dev eth0\n192.0.2.2\n}\nunicast_src_ip 10.0.0.1\nunicast_peer {\n10.0.0.2\n}\ntrack_interface {\neth1\n}\nlvs_sync_daemon_interface eth1\n}\n",
			[]string{`name = "VI"`, "vrid = 7", "priority = 150", `advert_interval = "500ms"`, "preempt = false", `preempt_delay = "30s"`, `vips = ["192.0.2.1/24", "192.0.2.2"]`, `source_address = "10.0.0.1"`, `unicast_peers = ["10.0.0.2"]`, `track_interfaces = ["eth1"]`, "[vrrp.sync]", `interface = "eth1"`}, nil, true},
		{"VRRPv2 by default", "vrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\n}\n", []string{"version = 2  # keepalived's default"}, nil, true},
		{"VRRPv2 rounds advert_int", "global_defs {\nvrrp_version 2\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nadvert_int 0.5\nvirtual_ipaddress {\n192.0.2.1\n}\n}\n",
			[]string{`advert_interval = "1s"`, "version = 2  # vrrp_version 2 at"}, []string{"7: advert_int: changed: advert_interval 1s: VRRPv2 counts whole seconds"}, true},
		{"VRRPv2 password", "vrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nauthentication {\nauth_type PASS\nauth_pass 0123456789\n}\n}\n",
			[]string{`auth_pass = "01234567"  # auth_type PASS`, "version = 2"}, []string{"7: authentication: changed: auth_pass \"01234567\": keepalived sends the first 8 bytes", "7: authentication: changed: auth_pass carried over so that lvsd pairs"}, true},
		{"VRRPv2 AH", "vrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nauthentication {\nauth_type AH\nauth_pass x\n}\n}\n",
			[]string{"version = 2"}, []string{"7: authentication: not carried over: auth_type AH"}, false},
		{"duplicate VIP changes the advert's count", "vrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n192.0.2.1\n}\n}\n",
			[]string{`vips = ["192.0.2.1"]`}, []string{"1: vrrp_instance: not carried over: keepalived puts all 2 addresses"}, false},
		{"other family VIP: keepalived ignores it too", "vrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n2001:db8::1\n}\n}\n",
			[]string{`vips = ["192.0.2.1"]`}, []string{"6: 2001:db8::1: not carried over: an lvsd instance carries one address family"}, false},
		{"IPv6 is VRRPv3", "global_defs {\nvrrp_version 2\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n2001:db8::1\n}\n}\n",
			nil, []string{"2: vrrp_version: changed: instance VI is IPv6"}, true},
		{"vrrp_version 3", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\n}\n", nil, nil, true},
		{"auth_hmac", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nauth_hmac {\nkey 1 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nkey 2 \"an ASCII key of thirty-two bytes\"\nactive_key 2\nanti_replay monotonic\ntime_window 10\nmode permissive\n}\n}\n",
			[]string{"[vrrp.auth]", `anti_replay = "monotonic"`, `time_window = "10s"`, `mode = "permissive"`, "active_key = 2", "[[vrrp.auth.key]]", "id = 1", `secret = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"`, "id = 2", `secret = "an ASCII key of thirty-two bytes"`}, nil, true},
		{"auth_hmac without active_key", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nauth_hmac {\nkey 1 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n}\n}\n", nil, []string{"10: auth_hmac: not carried over: active_key names no key"}, false},
		{"unicast_ttl and min_ttl", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nunicast_ttl 64\nunicast_peer {\n10.0.0.2 min_ttl 255 max_ttl 255\n10.0.0.3 min_ttl 250\n}\n}\n",
			[]string{"unicast_ttl = 64", "min_ttl = 250"}, []string{"12: 10.0.0.2: not carried over: lvsd has no max_ttl", "11: unicast_peer: changed: min_ttl 250 for every peer"}, false},
		{"notify scripts", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nnotify_master \"/usr/bin/up VI\"\nnotify /usr/bin/any\n}\n", []string{"master) /usr/bin/up VI ;;", `/usr/bin/any INSTANCE "$1" "$S" "$3"`}, []string{"10: notify_master: changed"}, true},
		{"track_script and vrrp_script", "global_defs {\nvrrp_version 3\n}\nvrrp_script chk {\nscript \"/bin/true\"\ninterval 2\nfall 3\nweight -2\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\ntrack_script {\nchk\n}\n}\n",
			[]string{"[[vrrp.track_script]]", `name = "chk"`, `command = ["/bin/true"]`, `interval = "2s"`, "fall = 3", "weight = -2"}, nil, true},
		{"track_script weight and shell", "global_defs {\nvrrp_version 3\n}\nvrrp_script chk {\nscript \"killall -0 sshd\"\nuser nobody\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\ntrack_script {\nchk weight 20\n}\n}\n",
			[]string{`command = ["/bin/sh", "-c", "killall -0 sshd"]`, `interval = "1s"`, "weight = 20"}, []string{"5: script: changed", "6: user: not carried over"}, false},
		{"track_interface weights", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\ntrack_interface {\neth1 weight 10\neth2 weight -20\neth3\neth0 weight 5\n}\n}\n",
			[]string{`track_interfaces = ["eth3"]`, "[[vrrp.track_interface]]", `name = "eth1"`, "weight = 10", `name = "eth2"`, "weight = -20"}, []string{"14: eth0: ignored"}, true},
		{"vrrp_sync_group", "global_defs {\nvrrp_version 3\n}\nvrrp_sync_group G {\ngroup {\nVI\nVJ\n}\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\ntrack_interface {\neth1 weight -20\n}\n}\nvrrp_instance VJ {\ninterface eth1\nvirtual_router_id 8\nvirtual_ipaddress {\n10.0.0.1\n}\n}\n",
			[]string{"[[vrrp_sync_group]]", `name = "G"`, `instances = ["VI", "VJ"]`, "weight = 0"}, []string{"17: eth1: changed: weight 0"}, true},
		{"vrrp_sync_group tracking weight", "global_defs {\nvrrp_version 3\n}\nvrrp_sync_group G {\ngroup {\nVI\nVJ\n}\nsync_group_tracking_weight\ntrack_interface {\neth5\n}\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\ntrack_interface {\neth1 weight -20\n}\n}\nvrrp_instance VJ {\ninterface eth1\nvirtual_router_id 8\nvirtual_ipaddress {\n10.0.0.1\n}\n}\n",
			[]string{`instances = ["VI", "VJ"]`, "weight = -20", `name = "eth5"`}, []string{"9: sync_group_tracking_weight: changed", "11: eth5: changed: tracked by vrrp_instance VI"}, true},
		{"vrrp_sync_group of one", "global_defs {\nvrrp_version 3\n}\nvrrp_sync_group G {\ngroup {\nVI\n}\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\n}\n", nil, []string{"4: vrrp_sync_group: not carried over: it has 1 instance(s)"}, false},
		{"authentication PASS", "global_defs {\nvrrp_version 3\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\nauthentication {\nauth_type PASS\nauth_pass x\n}\n}\n", nil, []string{"10: authentication: ignored: auth_type PASS: VRRPv3 has no authentication"}, true},
		{"process tuning", "global_defs {\nvrrp_version 3\nvrrp_rt_priority 50\nvrrp_no_swap\nvrrp_priority -10\ncheckers_rt_priority 20\n}\nvrrp_instance VI {\ninterface eth0\nvirtual_router_id 7\nvirtual_ipaddress {\n192.0.2.1\n}\n}\n",
			[]string{"vrrp_rt_priority = 50", "lock_memory = true"}, []string{"4: vrrp_no_swap: changed: lock_memory = true", "5: vrrp_priority: ignored", "6: checkers_rt_priority: ignored"}, true},
		{"comments, quotes and continuation", "! a comment\nvirtual_server 192.0.2.10 80 { # trailing\n  real_server 10.0.0.1 \\\n 80 {\n MISC_CHECK {\n misc_path \"/usr/bin/x #1\"\n misc_timeout 2\n }\n }\n}\n", []string{`command = ["/usr/bin/x", "#1"]`}, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := importString(t, c.conf)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			out := string(res.TOML)
			for _, want := range c.toml {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			notes := notesText(res)
			for _, want := range c.notes {
				if !strings.Contains(notes, "keepalived.conf:"+want) {
					t.Errorf("notes lack %q:\n%s", want, notes)
				}
			}
			if res.Complete() != c.complete {
				t.Errorf("complete = %v, want %v:\n%s", res.Complete(), c.complete, notes)
			}
			if _, err := config.Parse("out.toml", res.TOML); err != nil {
				t.Errorf("fails lvsd check: %v\n%s", err, out)
			}
		})
	}
}

// TestKeepalivedErrors: bad input is an error naming the file and line,
// and no result.
func TestKeepalivedErrors(t *testing.T) {
	cases := []struct{ name, conf, want string }{
		{"unclosed brace", "virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n  }\n", "keepalived.conf:1: virtual_server: '{' is never closed"},
		{"extra brace", "global_defs {\n}\n}\n", "keepalived.conf:3: '}' closes no block"},
		{"unknown keyword", "global_defs {\n  routerid x\n}\n", `keepalived.conf:2: unknown keyword "routerid" in global_defs`},
		{"unknown keyword in a checker", vsConf("", "TCP_CHECK {\nconect_port 80\n}"), `keepalived.conf:5: unknown keyword "conect_port" in TCP_CHECK`},
		{"missing include", "include /nonexistent/x.conf\n", "keepalived.conf:1: include: /nonexistent/x.conf does not exist"},
		{"include glob matching nothing", "include /nonexistent/*.conf\n", "keepalived.conf:1: include: no file matches /nonexistent/*.conf"},
		{"unterminated quote", "global_defs {\n router_id \"x\n}\n", "keepalived.conf:2: unterminated quote"},
		{"bad value", "vrrp_instance VI {\n virtual_router_id 300\n}\n", `keepalived.conf:2: virtual_router_id: invalid value "300"`},
		{"unknown group", "virtual_server group nope {\n}\n", `keepalived.conf:1: virtual_server: no virtual_server_group "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := importString(t, c.conf)
			if err == nil {
				t.Fatalf("no error; got:\n%s", res.TOML)
			}
			if res != nil {
				t.Errorf("a result with the error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
}

func TestKeepalivedIncludeLoop(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	os.WriteFile(a, []byte("include b.conf\n"), 0o644)
	os.WriteFile(b, []byte("\ninclude a.conf\n"), 0o644)
	_, err := Keepalived(a, KeepalivedOptions{})
	if err == nil || !strings.Contains(err.Error(), "b.conf:2: include: "+a+" includes itself") {
		t.Fatalf("err = %v", err)
	}
}

// TestKeepalivedIncludeGlob: include with a glob, relative to the
// including file, with positions in the included files.
func TestKeepalivedIncludeGlob(t *testing.T) {
	res, err := Keepalived("testdata/include/main.conf", KeepalivedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.TOML)
	for _, want := range []string{"# testdata/include/conf.d/dns.conf:1 virtual_server 192.0.2.10 53", "# testdata/include/conf.d/web.conf:1 virtual_server 192.0.2.10 80", "one_packet = true", `name = "lab"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(notesText(res), "testdata/include/conf.d/dns.conf:5: DNS_CHECK: changed") {
		t.Errorf("notes: %s", notesText(res))
	}
}

func TestConfigID(t *testing.T) {
	path := "testdata/keepalived/keepalived.conf.conditional_conf"
	res, err := Keepalived(path, KeepalivedOptions{ConfigID: "high"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.TOML), "priority = 170") {
		t.Errorf("-i high did not select @high lines:\n%s", res.TOML)
	}
}
