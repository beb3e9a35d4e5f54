package main

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsd/lvsd/internal/lab"
)

// advert is a VRRP advertisement read from a captured Ethernet frame.
type advert struct {
	src      netip.Addr
	vrid     int
	priority int
}

// parseAdvert reads an IPv4 VRRP (protocol 112) advertisement from an
// Ethernet frame.
func parseAdvert(frame []byte) (advert, bool) {
	const eth = 14
	if len(frame) < eth+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return advert{}, false
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 112 || len(ip) < ihl+8 {
		return advert{}, false
	}
	v := ip[ihl:]
	if v[0]&0x0f != 1 { // type 1: advertisement
		return advert{}, false
	}
	return advert{src: netip.AddrFrom4([4]byte(ip[12:16])), vrid: int(v[1]), priority: int(v[2])}, true
}

// advertLog records, with the kernel's timestamps, the adverts one
// namespace's eth0 carried: those it received from the master and those
// it sent itself (as master).
type advertLog struct {
	cap            *lab.Capture
	master, backup netip.Addr
	vrid           int

	mu       sync.Mutex
	fromPeer []time.Time // adverts of the master, priority > 0
	sent     []time.Time // adverts this node sent, priority > 0

	stop chan struct{}
	done chan struct{}
}

// recordAdverts reads c until stop.
func recordAdverts(c *lab.Capture, master, backup netip.Addr, vrid int) *advertLog {
	a := &advertLog{cap: c, master: master, backup: backup, vrid: vrid, stop: make(chan struct{}), done: make(chan struct{})}
	go a.read()
	return a
}

func (a *advertLog) read() {
	defer close(a.done)
	buf := make([]byte, 2048)
	for {
		select {
		case <-a.stop:
			return
		default:
		}
		f, err := a.cap.Next(buf)
		if err != nil {
			continue
		}
		adv, ok := parseAdvert(f.Data)
		if !ok || adv.vrid != a.vrid || adv.priority == 0 {
			continue
		}
		a.mu.Lock()
		switch {
		case adv.src == a.master && !f.Outgoing:
			a.fromPeer = appendSorted(a.fromPeer, f.At)
		case adv.src == a.backup && f.Outgoing:
			a.sent = appendSorted(a.sent, f.At)
		}
		a.mu.Unlock()
	}
}

// appendSorted keeps times sorted: the kernel stamps frames as they
// arrive, but two queued on different CPUs may be read out of order.
func appendSorted(ts []time.Time, t time.Time) []time.Time {
	i := len(ts)
	for i > 0 && ts[i-1].After(t) {
		i--
	}
	if i == len(ts) {
		return append(ts, t)
	}
	ts = append(ts, time.Time{})
	copy(ts[i+1:], ts[i:])
	ts[i] = t
	return ts
}

// window returns the master's adverts and the backup's own in [from, to).
func (a *advertLog) window(from, to time.Time) (fromPeer, sent []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), within(a.fromPeer, from, to)...), append([]time.Time(nil), within(a.sent, from, to)...)
}

// close stops the reader; the capture stays open.
func (a *advertLog) close() {
	close(a.stop)
	<-a.done
}
