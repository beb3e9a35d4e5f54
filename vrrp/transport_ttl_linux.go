package vrrp

import "golang.org/x/sys/unix"

// SetUnicastTTL sets the TTL (IPv6: hop limit) of the adverts the socket
// sends to unicast peers (unicast_ttl); multicast ones keep 255.
func (c *rawConn) SetUnicastTTL(ttl int) error {
	level, opt := unix.IPPROTO_IP, unix.IP_TTL
	if c.v6 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, ttl) }); err != nil {
		return c.closedErr(err)
	}
	return serr
}
