package importer

import (
	"fmt"
	"math"
	"time"
)

// vrrpVersion carries keepalived's VRRP version over. keepalived speaks
// VRRPv2 unless global_defs says vrrp_version 3 or the instance says
// version 3, and runs an IPv6 instance as v3 whatever they say; lvsd must
// speak the same or it and its keepalived twin both become master. With
// v2 come whole-second adverts and the auth_type PASS password.
func (m *kmap) vrrpVersion(v *vrrpInst, versionNode *node) {
	v2 := v.version == 2 && v.family != "inet6"
	if v.version == 2 && v.family == "inet6" && (versionNode != nil || m.versionPos.Line > 0) {
		at := versionNode
		if at == nil {
			at = &node{pos: m.versionPos, words: []string{"vrrp_version"}}
		}
		m.changed(at, "instance %s is IPv6, which VRRPv2 cannot carry: keepalived runs it as VRRPv3, and so does lvsd", v.name)
	}
	if d, at := v.advert, v.advertAt; at != nil {
		c := d.Round(10 * time.Millisecond)
		if v2 {
			// keepalived rounds too ("must be an integer. rounding").
			c = time.Duration(max(1, min(255, math.Round(d.Seconds())))) * time.Second
		}
		if c != d {
			unit := "VRRPv3 counts centiseconds"
			if v2 {
				unit = "VRRPv2 counts whole seconds, 1 to 255, and keepalived rounded it the same way"
			}
			m.changed(at, "advert_interval %s: %s", formatDuration(c), unit)
		}
		v.set("advert_interval", c)
	}
	if v2 {
		why := "keepalived's default"
		switch {
		case versionNode != nil:
			why = "version 2"
		case m.versionPos.Line > 0:
			why = fmt.Sprintf("vrrp_version 2 at %s", m.versionPos)
		}
		v.set("version", 2, why)
	}
	if v.passAt == nil {
		return
	}
	if !v2 {
		m.ignore(v.passAt, "auth_type PASS: VRRPv3 has no authentication and keepalived ignores it in a v3 instance; %s signs adverts", featAuthHMAC.what)
		return
	}
	pass := v.pass
	if len(pass) > 8 {
		pass = pass[:8]
		m.changed(v.passAt, "auth_pass %q: keepalived sends the first 8 bytes of a longer password, and lvsd takes those", pass)
	}
	v.set("auth_pass", pass, "auth_type PASS")
	m.changed(v.passAt, "auth_pass carried over so that lvsd pairs with this keepalived; it travels in clear text and protects nothing "+
		"(lvsd check warns): once both nodes run lvsd, move them to version 3 with [vrrp.auth]")
}
