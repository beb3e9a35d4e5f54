package config

import (
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/miekg/dns"
)

// CheckTypes lists the valid values of a check's type key.
var CheckTypes = []string{"tcp", "http", "https", "dns", "ldap", "exec"}

// newSpecific allocates the type-specific struct for typ and returns it
// as a struct value, or an invalid Value for an unknown type.
func (c *Check) newSpecific(typ string) reflect.Value {
	switch typ {
	case "tcp":
		c.TCP = &TCPCheck{}
		return reflect.ValueOf(c.TCP).Elem()
	case "http", "https":
		c.HTTP = &HTTPCheck{}
		return reflect.ValueOf(c.HTTP).Elem()
	case "dns":
		c.DNS = &DNSCheck{}
		return reflect.ValueOf(c.DNS).Elem()
	case "ldap":
		c.LDAP = &LDAPCheck{}
		return reflect.ValueOf(c.LDAP).Elem()
	case "exec":
		c.Exec = &ExecCheck{}
		return reflect.ValueOf(c.Exec).Elem()
	}
	return reflect.Value{}
}

// checkKeyOwners names the check types a type-specific key belongs to,
// e.g. "dns" for query_name, or "" for a key no type has.
func checkKeyOwners(key string) string {
	var owners []string
	for _, o := range []struct {
		name string
		t    reflect.Type
	}{
		{"tcp", reflect.TypeFor[TCPCheck]()},
		{"http/https", reflect.TypeFor[HTTPCheck]()},
		{"dns", reflect.TypeFor[DNSCheck]()},
		{"ldap", reflect.TypeFor[LDAPCheck]()},
		{"exec", reflect.TypeFor[ExecCheck]()},
	} {
		if _, ok := tomlFields(o.t)[key]; ok {
			owners = append(owners, o.name)
		}
	}
	return strings.Join(owners, " and ")
}

// SetDefaults fills every unset field, treating zero values as unset. It is
// for checks built in Go; Load applies the same defaults to keys absent
// from the file.
func (c *Check) SetDefaults() { c.setDefaults(nil) }

func (c *Check) setDefaults(given keySet) {
	if c.TCP == nil && c.HTTP == nil && c.DNS == nil && c.LDAP == nil && c.Exec == nil {
		c.newSpecific(c.Type)
	}
	if given.unset("interval", c.Interval.Duration == 0) {
		c.Interval.Duration = 5 * time.Second
	}
	if given.unset("timeout", c.Timeout.Duration == 0) {
		c.Timeout.Duration = min(2*time.Second, c.Interval.Duration/2)
	}
	if given.unset("rise", c.Rise == 0) {
		c.Rise = 2
	}
	if given.unset("fall", c.Fall == 0) {
		c.Fall = 3
	}
	switch {
	case c.TCP != nil:
		c.TCP.setDefaults(given)
	case c.HTTP != nil:
		c.HTTP.setDefaults(given)
	case c.DNS != nil:
		c.DNS.setDefaults(given)
	case c.LDAP != nil:
		c.LDAP.setDefaults(given)
	case c.Exec != nil:
		c.Exec.setDefaults(given)
	}
}

// Validate checks the common keys and the type-specific ones. Error paths
// are relative to the check (e.g. "timeout", "query_name").
func (c *Check) Validate() error {
	var p problems
	specific := map[string]bool{"tcp": c.TCP != nil, "http": c.HTTP != nil, "dns": c.DNS != nil, "ldap": c.LDAP != nil, "exec": c.Exec != nil}
	n := 0
	for _, set := range specific {
		if set {
			n++
		}
	}
	kind := c.Type
	if kind == "https" {
		kind = "http"
	}
	switch {
	case c.Type == "":
		p.add("type", "required (%s)", orList(CheckTypes))
		return p.err()
	case !contains(CheckTypes, c.Type):
		p.add("type", "unknown check type %q (want %s)", c.Type, orList(CheckTypes))
		return p.err()
	case n != 1 || !specific[kind]:
		p.add("type", "%s checks need their own settings and no other type's (set exactly one of TCP, HTTP, DNS, LDAP, Exec)", c.Type)
		return p.err()
	}
	if c.Interval.Duration <= 0 {
		p.add("interval", "must be positive")
	}
	// With no valid interval the timeout (often its default) cannot be
	// judged; the interval error is the one to fix.
	switch {
	case c.Interval.Duration <= 0:
	case c.Timeout.Duration <= 0:
		p.add("timeout", "must be positive")
	case c.Timeout.Duration >= c.Interval.Duration:
		p.add("timeout", "%s must be shorter than interval %s", c.Timeout.Duration, c.Interval.Duration)
	}
	if c.Rise < 1 {
		p.add("rise", "must be at least 1, not %d", c.Rise)
	}
	if c.Fall < 1 {
		p.add("fall", "must be at least 1, not %d", c.Fall)
	}
	if c.Port < 0 || c.Port > 65535 {
		p.add("port", "%d out of range 1..65535", c.Port)
	}
	if c.SourceAddress.Port != 0 {
		p.add("source_address", "must be an address without a port")
	}
	var err error
	switch {
	case c.TCP != nil:
		err = c.TCP.Validate()
	case c.HTTP != nil:
		if c.Type == "http" {
			c.HTTP.plainHTTP(&p)
		}
		err = c.HTTP.Validate()
	case c.DNS != nil:
		err = c.DNS.Validate()
	case c.LDAP != nil:
		err = c.LDAP.Validate()
	case c.Exec != nil:
		err = c.Exec.Validate()
	}
	if es, ok := err.(Errors); ok {
		p.errs = append(p.errs, es...)
	}
	return p.err()
}

func (t *TCPCheck) setDefaults(keySet) {}

// Validate has nothing to refuse: any bytes may be sent or expected.
func (t *TCPCheck) Validate() error { return nil }

func (h *HTTPCheck) setDefaults(given keySet) {
	if given.unset("method", h.Method == "") {
		h.Method = "GET"
	}
	if given.unset("path", h.Path == "") {
		h.Path = "/"
	}
	if given.unset("expect_status", len(h.ExpectStatus) == 0) {
		h.ExpectStatus = []string{"200-399"}
	}
	if given.unset("max_body", h.MaxBody == 0) {
		h.MaxBody = 64 << 10
	}
}

var httpMethod = regexp.MustCompile(`^[A-Z]+$`)

// Validate also parses ExpectStatus into Status.
func (h *HTTPCheck) Validate() error {
	var p problems
	if !httpMethod.MatchString(h.Method) {
		p.add("method", "invalid method %q (want an upper-case method such as GET or HEAD)", h.Method)
	}
	if !strings.HasPrefix(h.Path, "/") {
		p.add("path", "%q must start with /", h.Path)
	}
	h.Status = h.Status[:0]
	if len(h.ExpectStatus) == 0 {
		p.add("expect_status", "must list at least one status code or range")
	}
	for _, s := range h.ExpectStatus {
		r, ok := parseStatusRange(s)
		if !ok {
			p.add("expect_status", "invalid status %q (want a code 100..599 or a range such as \"200-399\")", s)
			break
		}
		h.Status = append(h.Status, r)
	}
	if h.ExpectBody != "" {
		if _, err := regexp.Compile(h.ExpectBody); err != nil {
			p.add("expect_body", "%s", regexpError(err))
		}
	}
	if h.MaxBody <= 0 {
		p.add("max_body", "must be positive")
	}
	return p.err()
}

// plainHTTP refuses TLS settings on a plain http check, where they would
// silently do nothing.
func (h *HTTPCheck) plainHTTP(p *problems) {
	switch {
	case h.TLSServerName != "":
		p.add("tls_server_name", "only for https checks")
	case h.CAFile != "":
		p.add("ca_file", "only for https checks")
	case h.TLSSkipVerify:
		p.add("tls_skip_verify", "only for https checks")
	}
}

func parseStatusRange(s string) (StatusRange, bool) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
		return StatusRange{}, false
	}
	return StatusRange{Lo: l, Hi: h}, true
}

// Match reports whether code is in the range.
func (r StatusRange) Match(code int) bool { return code >= r.Lo && code <= r.Hi }

func (d *DNSCheck) setDefaults(given keySet) {
	if given.unset("query_type", d.QueryType == "") {
		d.QueryType = "A"
	}
	if given.unset("transport", d.Transport == "") {
		d.Transport = "udp"
	}
	if given.unset("expect_rcode", d.ExpectRcode == "") {
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
func (d *DNSCheck) Validate() error {
	var p problems
	if d.QueryName == "" {
		p.add("query_name", "required")
	} else if _, ok := dns.IsDomainName(d.QueryName); !ok {
		p.add("query_name", "invalid domain name %q", d.QueryName)
	}
	if _, ok := dns.StringToType[d.QueryType]; !ok || d.QueryType == "" {
		p.add("query_type", "unknown record type %q", d.QueryType)
	}
	if d.Transport != "udp" && d.Transport != "tcp" {
		p.add("transport", "invalid value %q (want udp or tcp)", d.Transport)
	}
	if _, ok := dns.StringToRcode[d.ExpectRcode]; !ok || d.ExpectRcode == "" {
		p.add("expect_rcode", "unknown rcode %q (want NOERROR, NXDOMAIN, SERVFAIL, ...)", d.ExpectRcode)
	}
	if d.ExpectAnswer != "" {
		if _, err := netip.ParseAddr(d.ExpectAnswer); err != nil {
			if _, err := regexp.Compile(d.ExpectAnswer); err != nil {
				p.add("expect_answer", "neither an address nor a regexp: %s", regexpError(err))
			}
		}
	}
	return p.err()
}

// ExpectAddr returns ExpectAnswer as an address when it is one.
func (d *DNSCheck) ExpectAddr() (netip.Addr, bool) {
	a, err := netip.ParseAddr(d.ExpectAnswer)
	return a.Unmap(), err == nil
}

func (c *LDAPCheck) setDefaults(given keySet) {
	if given.unset("scope", c.Scope == "") {
		c.Scope = "base"
	}
	if given.unset("filter", c.Filter == "") {
		c.Filter = "(objectClass=*)"
	}
	if given.unset("expect_entries", c.ExpectEntries == 0) {
		c.ExpectEntries = 1
	}
	if given.unset("size_limit", c.SizeLimit == 0) {
		c.SizeLimit = max(c.ExpectEntries, 1)
	}
}

// Validate refuses DNs and filters go-ldap cannot parse and settings that
// could never pass or would silently be ignored.
func (c *LDAPCheck) Validate() error {
	var p problems
	if c.Base == "" {
		p.add("base", `required (e.g. "o=grid")`)
	} else if _, err := ldap.ParseDN(c.Base); err != nil {
		p.add("base", "invalid DN %q: %v", c.Base, err)
	}
	if c.BindDN != "" {
		if _, err := ldap.ParseDN(c.BindDN); err != nil {
			p.add("bind_dn", "invalid DN %q: %v", c.BindDN, err)
		}
	}
	if c.BindPasswordFile != "" && c.BindDN == "" {
		p.add("bind_password_file", "needs bind_dn")
	}
	if !contains([]string{"base", "one", "sub"}, c.Scope) {
		p.add("scope", "invalid value %q (want base, one or sub)", c.Scope)
	}
	if _, err := ldap.CompileFilter(c.Filter); err != nil {
		p.add("filter", "invalid filter %q: %v", c.Filter, ldapErrorText(err))
	}
	if c.ExpectEntries < 0 {
		p.add("expect_entries", "must not be negative")
	}
	switch {
	case c.SizeLimit < 0:
		p.add("size_limit", "must not be negative")
	case c.SizeLimit > 0 && c.SizeLimit < c.ExpectEntries:
		p.add("size_limit", "%d is below expect_entries %d, so the check could never pass", c.SizeLimit, c.ExpectEntries)
	}
	if c.StartTLS && c.LDAPS {
		p.add("starttls", "cannot be combined with ldaps")
	}
	if !c.StartTLS && !c.LDAPS {
		switch {
		case c.TLSServerName != "":
			p.add("tls_server_name", "only with starttls or ldaps")
		case c.CAFile != "":
			p.add("ca_file", "only with starttls or ldaps")
		case c.TLSSkipVerify:
			p.add("tls_skip_verify", "only with starttls or ldaps")
		}
	}
	return p.err()
}

func (e *ExecCheck) setDefaults(keySet) {}

// Validate requires a program to run.
func (e *ExecCheck) Validate() error {
	var p problems
	switch {
	case len(e.Command) == 0:
		p.add("command", `required (an argv list such as ["/usr/local/bin/check-app", "--quick"])`)
	case e.Command[0] == "":
		p.add("command", "the program name (first element) is empty")
	}
	return p.err()
}

func regexpError(err error) string {
	return "invalid regexp: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// ldapErrorText drops the "LDAP Result Code 201 ..." prefix go-ldap puts
// on filter errors; only its explanation helps an operator.
func ldapErrorText(err error) string {
	if le, ok := err.(*ldap.Error); ok && le.Err != nil {
		return le.Err.Error()
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// orList formats a, b or c.
func orList(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " or " + list[len(list)-1]
}
