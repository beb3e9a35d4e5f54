package checks

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/miekg/dns"
)

// dnsHandler answers per name the way broken and healthy servers do.
func dnsHandler(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	name := q.Question[0].Name
	a := func(ip string) dns.RR {
		rr, _ := dns.NewRR(name + " 60 IN A " + ip)
		return rr
	}
	switch name {
	case "ok.test.":
		m.Answer = []dns.RR{a("192.0.2.1")}
	case "cname.test.":
		cname, _ := dns.NewRR(name + " 60 IN CNAME ok.test.")
		ok, _ := dns.NewRR("ok.test. 60 IN A 192.0.2.1")
		m.Answer = []dns.RR{cname, ok}
	case "wrong.test.":
		m.Answer = []dns.RR{a("192.0.2.99")}
	case "empty.test.":
	case "nx.test.":
		m.Rcode = dns.RcodeNameError
	case "fail.test.":
		m.Rcode = dns.RcodeServerFailure
	case "refused.test.":
		m.Rcode = dns.RcodeRefused
	case "txt.test.":
		txt, _ := dns.NewRR(name + ` 60 IN TXT "bdii=ok"`)
		m.Answer = []dns.RR{txt}
	case "hang.test.":
		return // never answer
	}
	w.WriteMsg(m)
}

// startDNS serves dnsHandler on loopback over UDP and TCP.
func startDNS(t *testing.T) (udp, tcp netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(dnsHandler)},
		{Listener: l, Handler: dns.HandlerFunc(dnsHandler)},
	} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return addrOf(t, pc.LocalAddr()), addrOf(t, l.Addr())
}

func TestDNS(t *testing.T) {
	udp, tcp := startDNS(t)
	tests := []struct {
		name    string
		d       DNSSettings
		healthy bool
		class   string
		mention string // the reason must say this
	}{
		{name: "right address", d: DNSSettings{QueryName: "ok.test", ExpectAnswer: "192.0.2.1"}, healthy: true, class: "ok"},
		{name: "address behind a CNAME", d: DNSSettings{QueryName: "cname.test", ExpectAnswer: "192.0.2.1"}, healthy: true, class: "ok"},
		{name: "any answer", d: DNSSettings{QueryName: "wrong.test"}, healthy: true, class: "ok"},
		{name: "wrong address", d: DNSSettings{QueryName: "wrong.test", ExpectAnswer: "192.0.2.1"}, class: "answer", mention: "192.0.2.99"},
		{name: "regexp over the answer", d: DNSSettings{QueryName: "wrong.test", ExpectAnswer: `^192\.0\.2\.\d+$`}, healthy: true, class: "ok"},
		{name: "regexp not matching", d: DNSSettings{QueryName: "ok.test", ExpectAnswer: `^10\.`}, class: "answer"},
		{name: "TXT regexp", d: DNSSettings{QueryName: "txt.test", QueryType: "TXT", ExpectAnswer: `bdii=ok`}, healthy: true, class: "ok"},
		{name: "empty answer", d: DNSSettings{QueryName: "empty.test"}, class: "empty", mention: "no answer"},
		{name: "empty answer with expectation", d: DNSSettings{QueryName: "empty.test", ExpectAnswer: "192.0.2.1"}, class: "empty"},
		{name: "NXDOMAIN", d: DNSSettings{QueryName: "nx.test"}, class: "rcode", mention: "NXDOMAIN"},
		{name: "SERVFAIL", d: DNSSettings{QueryName: "fail.test", ExpectAnswer: "192.0.2.1"}, class: "rcode", mention: "SERVFAIL"},
		{name: "REFUSED", d: DNSSettings{QueryName: "refused.test"}, class: "rcode", mention: "REFUSED"},
		{name: "NXDOMAIN expected", d: DNSSettings{QueryName: "nx.test", ExpectRcode: "NXDOMAIN"}, healthy: true, class: "ok"},
		{name: "no reply", d: DNSSettings{QueryName: "hang.test"}, class: "timeout"},
	}
	for _, transport := range []struct {
		name string
		addr netip.AddrPort
	}{{"udp", udp}, {"tcp", tcp}} {
		for _, tc := range tests {
			t.Run(transport.name+"/"+tc.name, func(t *testing.T) {
				d := tc.d
				d.Transport = transport.name
				r := runOnce(t, &config.Check{Type: "dns", Settings: &d}, transport.addr, 300*time.Millisecond)
				wantResult(t, r, tc.healthy, tc.class)
				if !strings.Contains(r.Reason, tc.mention) {
					t.Errorf("reason %q does not mention %q", r.Reason, tc.mention)
				}
			})
		}
	}
}

func TestDNSTransportIsHonoured(t *testing.T) {
	udp, tcp := startDNS(t)
	// Nothing listens on TCP at the UDP port and vice versa.
	r := runOnce(t, &config.Check{Type: "dns", Settings: &DNSSettings{QueryName: "ok.test", Transport: "tcp"}}, udp, 300*time.Millisecond)
	if r.Healthy {
		t.Errorf("tcp probe of a udp-only port was healthy: %s", r.Reason)
	}
	r = runOnce(t, &config.Check{Type: "dns", Port: int(tcp.Port()), Settings: &DNSSettings{QueryName: "ok.test", Transport: "tcp"}}, udp, 300*time.Millisecond)
	wantResult(t, r, true, "ok")
}

func TestDNSValidate(t *testing.T) {
	for _, d := range []DNSSettings{
		{},
		{QueryName: "ok.test", QueryType: "BOGUS"},
		{QueryName: "ok.test", Transport: "quic"},
		{QueryName: "ok.test", ExpectRcode: "FINE"},
		{QueryName: "ok.test", ExpectAnswer: "(["},
	} {
		if err := validate(&config.Check{Type: "dns", Settings: &d}); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", d)
		}
	}
}
