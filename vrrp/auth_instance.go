package vrrp

// What an instance does with [vrrp.auth], unicast_ttl and min_ttl: the
// executor's side (signing, socket TTL) follows the settings whenever the
// adverts are rebuilt; the receiving side asks the gate.

// unicastTTLSetter is a Conn whose unicast TTL can change while it is
// open (RawTransport's), so a reload of unicast_ttl needs no new socket.
type unicastTTLSetter interface {
	SetUnicastTTL(ttl int) error
}

// followSettings applies the settings the signer, the gate and the socket
// carry (ex.mu held; from rebuildAdverts, so at open and on every reload).
func (in *instance) followSettings() {
	c := &in.m.cfg
	in.signer.configure(&c.auth)
	in.gate.configure(c, in.met.m)
	if ts, ok := in.conn.(unicastTTLSetter); ok && !c.multicast() && c.unicastTTL > 0 {
		if err := ts.SetUnicastTTL(c.unicastTTL); err != nil {
			in.log.Error("vrrp: setting unicast_ttl", "instance", in.name, "ttl", c.unicastTTL, "err", err)
		}
	}
}

// authenticate runs the gate on a decoded advert and counts and logs what
// it drops; false means dropped.
func (in *instance) authenticate(p *Packet, ad *Advert, extra []byte) bool {
	v := in.gate.admit(in.ex.clock.Now(), in.name, p.Src, ad, p.Payload, extra)
	if v.log != nil {
		v.log(in.log)
	}
	if v.reason != "" {
		in.met.drop(v.reason)
		return false
	}
	return true
}
