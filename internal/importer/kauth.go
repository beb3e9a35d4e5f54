package importer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authHMAC carries keepalived 2.4's auth_hmac over as [vrrp.auth]: the same
// trailer on the wire, the same key forms, defaults and modes, so an
// imported director and its keepalived twin verify each other.
func (m *kmap) authHMAC(b *node, v *vrrpInst) {
	t := newTable("[vrrp.auth]", fmt.Sprintf("%s auth_hmac", b.pos))
	var keys []*table
	var ids []int
	active := 0
	for _, n := range b.kids {
		switch n.key() {
		case "key":
			if !m.needArgs(n, 2, -1) {
				continue
			}
			id, err := strconv.Atoi(n.arg(0))
			if err != nil || id < 1 || id > 255 {
				m.errorf(n, "key id %q must be 1..255", n.arg(0))
				continue
			}
			// keepalived's ${_ENV NAME} in a file: path is the environment
			// variable; lvsd expands $CREDENTIALS_DIRECTORY itself.
			val := strings.Join(n.args()[1:], " ")
			val = strings.ReplaceAll(val, "${_ENV CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY")
			k := newTable("[[vrrp.auth.key]]")
			k.set("id", id)
			k.set("secret", val)
			keys, ids = append(keys, k), append(ids, id)
		case "active_key":
			if id, ok := m.intArg(n, 1, 255); ok {
				active = id
			}
		case "anti_replay":
			if m.enumArg(n, "time", "monotonic") {
				t.set("anti_replay", n.arg(0))
			}
		case "time_window":
			if s, ok := m.intArg(n, 1, 300); ok {
				t.set("time_window", time.Duration(s)*time.Second)
			}
		case "mode":
			if m.enumArg(n, "enforce", "permissive", "receive-only") {
				t.set("mode", n.arg(0))
			}
		default:
			m.unknown(n, "auth_hmac")
		}
	}
	if !slices.Contains(ids, active) {
		// keepalived then runs the instance unauthenticated, and so does
		// the import: signing needs a decision only the site can make.
		m.drop(b, "active_key names no key, so keepalived runs this instance without auth_hmac; set active_key and add [vrrp.auth] to sign")
		return
	}
	t.set("active_key", active)
	for _, k := range keys {
		t.add(k)
	}
	v.auth = t
}

// enumArg checks a one-word argument against the allowed words.
func (m *kmap) enumArg(n *node, allowed ...string) bool {
	if !m.needArgs(n, 1, 1) {
		return false
	}
	if !slices.Contains(allowed, n.arg(0)) {
		m.errorf(n, "%q must be one of %s", n.arg(0), strings.Join(allowed, ", "))
		return false
	}
	return true
}
