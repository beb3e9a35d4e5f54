package checks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/miekg/dns"
)

// DNSSettings are the keys of a dns check: one query, whose rcode and
// answer are judged.
type DNSSettings struct {
	QueryName   string `toml:"query_name"`
	QueryType   string `toml:"query_type"`   // default A
	Transport   string `toml:"transport"`    // udp | tcp; default the service's protocol, else udp
	ExpectRcode string `toml:"expect_rcode"` // default NOERROR
	// ExpectAnswer is an address, or a regexp some answer record's text must match.
	ExpectAnswer string `toml:"expect_answer"`
}

func (d *DNSSettings) Defaults(def config.CheckDefaults) {
	if !def.Given("query_type") {
		d.QueryType = "A"
	}
	// A DNS check probes the protocol the service carries unless told
	// otherwise: a TCP DNS service must be checked over TCP.
	if !def.Given("transport") {
		d.Transport = "udp"
		if def.Protocol == "tcp" {
			d.Transport = "tcp"
		}
	}
	if !def.Given("expect_rcode") {
		d.ExpectRcode = "NOERROR"
	}
	// The tables in miekg/dns are upper case and a query name must be
	// absolute; accept what people type.
	d.QueryType = strings.ToUpper(d.QueryType)
	d.ExpectRcode = strings.ToUpper(d.ExpectRcode)
	if _, ok := dns.IsDomainName(d.QueryName); ok && d.QueryName != "" {
		d.QueryName = dns.Fqdn(d.QueryName)
	}
}

// Validate refuses names, record types and rcodes miekg/dns does not know.
func (d *DNSSettings) Validate(p *config.Problems) {
	if d.QueryName == "" {
		p.Add("query_name", "required")
	} else if _, ok := dns.IsDomainName(d.QueryName); !ok {
		p.Add("query_name", "invalid domain name %q", d.QueryName)
	}
	if _, ok := dns.StringToType[d.QueryType]; !ok || d.QueryType == "" {
		p.Add("query_type", "unknown record type %q", d.QueryType)
	}
	if d.Transport != "udp" && d.Transport != "tcp" {
		p.Add("transport", "invalid value %q (want udp or tcp)", d.Transport)
	}
	if _, ok := dns.StringToRcode[d.ExpectRcode]; !ok || d.ExpectRcode == "" {
		p.Add("expect_rcode", "unknown rcode %q (want NOERROR, NXDOMAIN, SERVFAIL, ...)", d.ExpectRcode)
	}
	if _, _, err := parseExpectAnswer(d.ExpectAnswer); err != nil {
		p.Add("expect_answer", "neither an address nor a regexp: %s", regexpError(errors.Unwrap(err)))
	}
}

func (d *DNSSettings) Port() config.PortUse { return config.PortRequired }

func (d *DNSSettings) Describe() string {
	what := fmt.Sprintf("%s %s over %s, expect %s", d.QueryType, d.QueryName, d.Transport, d.ExpectRcode)
	if d.ExpectAnswer != "" {
		what += fmt.Sprintf(" and answer %q", d.ExpectAnswer)
	}
	return what
}

func (d *DNSSettings) DedupKey() string { return dedupKey(d) }

// parseExpectAnswer reads expect_answer: an IP address, which an A or AAAA
// record must hold, or else a regexp some answer record must match.
func parseExpectAnswer(s string) (netip.Addr, *regexp.Regexp, error) {
	if s == "" {
		return netip.Addr{}, nil, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil, nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("expect_answer %q is neither an address nor a regexp: %w", s, err)
	}
	return netip.Addr{}, re, nil
}

// dnsChecker sends one query and judges rcode and answer.
type dnsChecker struct {
	addr      string
	transport string
	qname     string
	qtype     uint16
	rcode     int
	// When rcode is NOERROR an empty answer fails.
	wantAddr netip.Addr
	wantRE   *regexp.Regexp
	check    *config.Check
}

func (d *DNSSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	wantAddr, wantRE, err := parseExpectAnswer(d.ExpectAnswer)
	if err != nil {
		return nil, err
	}
	return &dnsChecker{
		addr:      target.String(),
		transport: d.Transport,
		qname:     dns.Fqdn(d.QueryName),
		qtype:     dns.StringToType[strings.ToUpper(d.QueryType)],
		rcode:     dns.StringToRcode[strings.ToUpper(d.ExpectRcode)],
		wantAddr:  wantAddr,
		wantRE:    wantRE,
		check:     c,
	}, nil
}

func (d *dnsChecker) Check(ctx context.Context) Result {
	start := time.Now()
	client := &dns.Client{Net: d.transport, Dialer: dialer(d.check, d.transport)}
	if deadline, ok := ctx.Deadline(); ok {
		// miekg/dns otherwise caps each exchange at its own 2s default.
		client.Timeout = time.Until(deadline)
	}
	conn, err := client.DialContext(ctx, d.addr)
	if err != nil {
		return timed(start, netFail(ctx, d.transport+" connect "+d.addr, err))
	}
	defer conn.Close()
	stop := watch(ctx, conn.Conn)
	defer stop()

	q := new(dns.Msg)
	q.SetQuestion(d.qname, d.qtype)
	q.RecursionDesired = true
	what := fmt.Sprintf("%s %s over %s to %s", strings.TrimSuffix(d.qname, "."), dns.TypeToString[d.qtype], d.transport, d.addr)
	resp, _, err := client.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		return timed(start, netFail(ctx, what, err))
	}
	return timed(start, d.judge(what, resp))
}

func (d *dnsChecker) judge(what string, resp *dns.Msg) Result {
	if resp.Rcode != d.rcode {
		return failf("rcode", "%s: got %s, want %s", what, dns.RcodeToString[resp.Rcode], dns.RcodeToString[d.rcode])
	}
	if d.rcode != dns.RcodeSuccess && !d.wantAddr.IsValid() && d.wantRE == nil {
		return okf("%s: %s as expected", what, dns.RcodeToString[resp.Rcode])
	}
	if len(resp.Answer) == 0 {
		if resp.Truncated {
			return failf("empty", "%s: truncated reply with no answer records (try transport tcp)", what)
		}
		return failf("empty", "%s: %s with no answer records", what, dns.RcodeToString[resp.Rcode])
	}
	if !d.wantAddr.IsValid() && d.wantRE == nil {
		return okf("%s: %d answer records", what, len(resp.Answer))
	}
	var got []string
	for _, rr := range resp.Answer {
		rdata := strings.TrimPrefix(rr.String(), rr.Header().String())
		got = append(got, rdata)
		if d.wantAddr.IsValid() {
			if a, ok := rrAddr(rr); ok && a == d.wantAddr {
				return okf("%s: answer %s", what, rdata)
			}
			continue
		}
		if d.wantRE.MatchString(rdata) || d.wantRE.MatchString(rr.String()) {
			return okf("%s: answer %s matches %q", what, rdata, d.wantRE.String())
		}
	}
	want := d.wantAddr.String()
	if d.wantRE != nil {
		want = "a match for " + d.wantRE.String()
	}
	return failf("answer", "%s: got %s, want %s", what, excerpt(strings.Join(got, ", "), 200), want)
}

func rrAddr(rr dns.RR) (netip.Addr, bool) {
	switch v := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(v.A)
		return a.Unmap(), ok
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(v.AAAA)
		return a, ok
	}
	return netip.Addr{}, false
}
