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

// receiveBuffer is the VRRP socket's receive buffer. The default (about
// 200 KiB, some 250 small packets) filled in 25 ms under a flood of 10,000
// forged adverts a second while the receiving goroutine waited for a CPU,
// and the kernel then dropped the master's adverts with the forgeries.
// 2 MiB holds a quarter of a second of such a flood.
const receiveBuffer = 2 << 20

// setReceiveBuffer enlarges the receive buffer past net.core.rmem_max
// where the process may (CAP_NET_ADMIN, which sending VRRP needs anyway),
// else as far as rmem_max allows. Failing both leaves the default.
func setReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}
