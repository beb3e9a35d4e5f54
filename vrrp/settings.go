package vrrp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lvsd/lvsd/config"
)

// settings is one instance's config.VRRP in the form the machine uses. It
// is a plain copy: config.Parse has filled every default and checked every
// rule, and this package applies none of its own.
type settings struct {
	name          string
	vrid          uint8
	iface         string
	priority      int
	interval      time.Duration
	preempt       bool
	preemptDelay  time.Duration
	vips          []netip.Prefix
	peers         []netip.Addr
	source        netip.Addr
	checksum      Checksum
	garpRepeat    int
	garpInterval  time.Duration
	garpRefresh   time.Duration
	notify        []string
	notifyTimeout time.Duration
	trackServices []string
	trackIfaces   []string
	unicastTTL    int
	minTTL        int
	auth          authSettings
	// VRRPv2 (packet_v2.go): version is 2 or 3; v2Auth is what v2 adverts
	// carry and must carry to be accepted. skewBase, when set, replaces the
	// master's interval in Skew_Time: RFC 3768 counts it in seconds.
	version  int
	v2Auth   V2Auth
	skewBase time.Duration
	// HA for the services (settings_ha.go).
	ha haSettings
}

// settingsOf copies a complete, validated config.VRRP.
func settingsOf(c *config.VRRP) (settings, error) {
	cs, err := ParseChecksum(c.Checksum)
	if err != nil {
		return settings{}, fmt.Errorf("vrrp: instance %q: %w", c.Name, err)
	}
	s := settings{
		name: c.Name, vrid: uint8(c.VRID), iface: c.Interface, priority: c.Priority,
		interval: c.AdvertInterval.Duration, preempt: c.PreemptOn(), preemptDelay: c.PreemptDelay.Duration,
		source: c.SourceAddress.IP, checksum: cs, garpRepeat: c.GARPRepeat,
		garpInterval: c.GARPInterval.Duration, garpRefresh: c.GARPRefresh.Duration,
		notify: c.Notify, notifyTimeout: c.NotifyTimeout.Duration,
		trackServices: c.TrackServices, trackIfaces: c.TrackInterfaces,
		unicastTTL: c.UnicastTTL, minTTL: c.MinTTL, auth: authSettingsOf(c.Auth),
	}
	if c.Version == 2 {
		// RFC 3768's checksum covers the message alone.
		s.version, s.checksum, s.skewBase = 2, ChecksumRFC9568, time.Second
		s.v2Auth = V2Password(c.AuthPass)
	} else {
		s.version = 3
	}
	for _, p := range c.VIPs {
		s.vips = append(s.vips, p.Prefix)
	}
	for _, a := range c.UnicastPeers {
		s.peers = append(s.peers, a.IP)
	}
	s.haOf(c)
	return s, nil
}

func (s *settings) multicast() bool { return len(s.peers) == 0 }

func (s *settings) v4() bool { return s.vips[0].Addr().Is4() }

func (s *settings) group() netip.Addr {
	if s.v4() {
		return GroupV4
	}
	return GroupV6
}

func (s *settings) vipAddrs() []netip.Addr {
	out := make([]netip.Addr, len(s.vips))
	for i, p := range s.vips {
		out[i] = p.Addr()
	}
	return out
}

// destinations are where adverts go: the unicast peers, or the group.
func (s *settings) destinations() []netip.Addr {
	if s.multicast() {
		return []netip.Addr{s.group()}
	}
	return s.peers
}
