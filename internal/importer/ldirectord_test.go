package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
)

func TestLdirectordKeywords(t *testing.T) {
	cases := []struct {
		name, conf string
		toml       []string
		notes      []string
		complete   bool
	}{
		{"defaults", "virtual=192.0.2.10:80\n\treal=10.0.0.1:80 masq\n\treal=10.0.0.2:80 masq 3\n",
			[]string{`scheduler = "wrr"`, `forwarding = "nat"`, `type = "http"`, `interval = "40s"`, `timeout = "30s"`, "fall = 1", "weight = 3", "alpha = false"}, nil, true},
		{"globals and per virtual", "checkinterval=5\nchecktimeout=2\nfailurecount=3\nquiescent=yes\nvirtual=192.0.2.10:25\n\treal=10.0.0.1:25 gate\n\tchecktype=connect\n\tcheckport=2525\n\tpersistent=300\n\tnetmask=255.255.255.0\n\tscheduler=lc\n\tprotocol=tcp\n",
			[]string{`type = "tcp"`, `interval = "5s"`, `timeout = "2s"`, "fall = 3", "port = 2525", `on_failure = "drain"`, `persistence = "5m"`, `persistence_netmask = "255.255.255.0"`, `scheduler = "lc"`, `forwarding = "dr"`}, nil, true},
		{"ldap negotiate", "virtual=192.0.2.10:2170\n\treal=10.0.0.1:2170 gate\n\tservice=ldap\n\trequest=\"o=grid\"\n\tchecktimeout=3\n\tcheckinterval=10\n",
			[]string{`type = "ldap"`, `base = "o=grid"`, `scope = "base"`, `# filter = "(|(objectClass=GlueService)(objectClass=GLUE2Service))", expect_entries = 1.`}, []string{"1: virtual: changed: imported as a base-scope LDAP check"}, true},
		{"dns negotiate", "virtual=192.0.2.10:53\n\treal=10.0.0.1:53 gate\n\trequest=\"example.org\"\n\treceive=\"192.0.2.1\"\n\tnegotiatetimeout=2\n",
			[]string{`protocol = "udp"`, `type = "dns"`, `query_name = "example.org"`, `expect_answer = "192.0.2.1"`, `timeout = "2s"`}, nil, true},
		{"external", "virtual=192.0.2.10:80\n\treal=10.0.0.1:80 gate\n\tchecktype=external\n\tcheckcommand=/usr/local/bin/chk\n",
			[]string{`command = ["/bin/sh", "-c", "exec /usr/local/bin/chk 192.0.2.10 80 \"$LVSD_REALSERVER_IP\" \"$LVSD_REALSERVER_PORT\""]`}, nil, true},
		{"fallback, range and real request", "virtual=192.0.2.10:80\n\treal=10.0.0.1->10.0.0.3:80 gate 2 \"/alive\", \"OK\"\n\tfallback=127.0.0.1:80 gate\n\tvirtualhost=www.example.org\n",
			[]string{`sorry_server = "127.0.0.1:80"`, `address = "10.0.0.3"`, `path = "/alive"`, `expect_body = "OK"`, `host = "www.example.org"`}, nil, true},
		{"fwmark and IPv6", "virtual6=[2001:db8::10]:80\n\treal6=[2001:db8::1]:80 masq\n\tchecktype=on\nvirtual=7\n\treal=10.0.0.1 gate\n\tchecktype=off\n",
			[]string{`vip = "2001:db8::10"`, `address = "2001:db8::1"`, "fwmark = 7", "weight = 0"}, []string{"4: virtual: changed: checktype=off"}, true},
		{"ping", "virtual=192.0.2.10:80\n\treal=10.0.0.1:80 gate\n\tchecktype=ping\n", []string{`type = "ping"`}, nil, true},
		{"connect on udp", "virtual=192.0.2.10:53\n\treal=10.0.0.1:53 gate\n\tprotocol=udp\n\tchecktype=connect\n",
			[]string{`type = "udp"`, `require_reply = false`}, []string{"1: virtual: changed: checktype=connect on a UDP service"}, true},
		{"email", "emailalert=root@example.org\nvirtual=192.0.2.10:80\n\treal=10.0.0.1:80 gate\n", nil, []string{"1: emailalert: not carried over"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ldirectord.cf")
			os.WriteFile(path, []byte(c.conf), 0o644)
			res, err := Ldirectord(path)
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
				if !strings.Contains(notes, "ldirectord.cf:"+want) {
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

func TestLdirectordErrors(t *testing.T) {
	cases := []struct{ name, conf, want string }{
		{"unknown global", "chekinterval=5\n", `ldirectord.cf:1: unknown keyword "chekinterval"`},
		{"unknown in virtual", "virtual=192.0.2.10:80\n\treal=10.0.0.1:80 gate\n\tshceduler=rr\n", `ldirectord.cf:3: unknown keyword "shceduler" in virtual`},
		{"bad real", "virtual=192.0.2.10:80\n\treal=10.0.0.1::80 gate\n", "ldirectord.cf:2: real: want IP"},
		{"indented outside a virtual", "\tscheduler=rr\n", "ldirectord.cf:1: scheduler: an indented line outside a virtual= section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ldirectord.cf")
			os.WriteFile(path, []byte(c.conf), 0o644)
			res, err := Ldirectord(path)
			if err == nil || res != nil {
				t.Fatalf("no error: %v", res)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
}
