package config

import "time"

// VRRPv2 (RFC 3768) is what keepalived speaks unless its config says
// vrrp_version 3: an lvsd that replaces one node of such a pair must speak
// it until the other is replaced too. It is IPv4 only, counts the advert
// interval in whole seconds, has one checksum form, and authenticates with
// nothing or a clear-text password, never the HMAC trailer of [vrrp.auth].

// v2PassMax is the Authentication Data field of a VRRPv2 advert.
const v2PassMax = 8

// vrrpV2 checks what version = 2 allows (called before the VIPs and auth
// are checked; the interval has its default).
func (l *loader) vrrpV2(v *VRRP, at loc, g keySet) {
	if d := v.AdvertInterval.Duration; d < time.Second || d > 255*time.Second || d%time.Second != 0 {
		l.errorf(at.key("advert_interval"), "%s is not 1s..255s in whole seconds (VRRPv2 counts seconds)", d)
	}
	for _, p := range v.VIPs {
		if p.IsValid() && !p.Addr().Is4() {
			l.errorf(at.key("version"), "VRRPv2 is IPv4 only and the VIPs are IPv6 (use version 3)")
			break
		}
	}
	if g["checksum"] {
		l.errorf(at.key("checksum"), "VRRPv2 has one checksum form, over the message alone: remove checksum")
	}
	if v.Auth != nil {
		l.errorf(at.key("auth"), "[vrrp.auth] signs VRRPv3 adverts; version 2 has only auth_pass")
	}
	if !g["auth_pass"] {
		return
	}
	p := v.AuthPass
	switch {
	case p == "":
		l.errorf(at.key("auth_pass"), "must not be empty (leave it out for no authentication)")
		return
	case len(p) > v2PassMax:
		l.errorf(at.key("auth_pass"), "%d bytes, VRRPv2 carries %d (keepalived sends the first %d of a longer auth_pass: give those)", len(p), v2PassMax, v2PassMax)
		return
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			l.errorf(at.key("auth_pass"), "byte %d is not printable ASCII", i+1)
			return
		}
	}
	l.warnf(at.key("auth_pass"), "a VRRPv2 password travels in clear text in every advert: it keeps out a misconfigured neighbour, not an attacker. "+
		"Use it only to pair with a keepalived that has one, then move both nodes to version 3 with [vrrp.auth]")
}
