package main

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// advertLog records when the client heard each director's VRRP adverts. A
// third machine on the segment tells late sending (gaps here) apart from
// late receiving (no gaps here, yet the backup took over).
type advertLog struct {
	fd      int
	mu      sync.Mutex
	arrived map[netip.Addr][]time.Time
	done    chan struct{}
}

// listenAdverts joins the VRRP group on the client's eth0 and records
// adverts until close.
func listenAdverts(h *host) (*advertLog, error) {
	a := &advertLog{fd: -1, arrived: map[netip.Addr][]time.Time{}, done: make(chan struct{})}
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, 112)
		if err != nil {
			return err
		}
		a.fd = fd
		mreq := &unix.IPMreqn{Multiaddr: [4]byte{224, 0, 0, 18}}
		if link, err := h.Netlink().LinkByName("eth0"); err == nil {
			mreq.Ifindex = int32(link.Attrs().Index)
		}
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)
	})
	if err != nil {
		if a.fd >= 0 {
			unix.Close(a.fd)
		}
		return nil, err
	}
	unix.SetsockoptTimeval(a.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	go a.read()
	return a, nil
}

func (a *advertLog) read() {
	defer close(a.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(a.fd, buf, 0)
		now := time.Now()
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return // closed
		}
		if n < 20 {
			continue
		}
		src := netip.AddrFrom4([4]byte(buf[12:16]))
		a.mu.Lock()
		a.arrived[src] = append(a.arrived[src], now)
		a.mu.Unlock()
	}
}

func (a *advertLog) close() {
	unix.Shutdown(a.fd, unix.SHUT_RDWR)
	unix.Close(a.fd)
}

// gaps returns the median and the largest gap between consecutive adverts
// from src heard in [from, to), and when the largest one ended.
func (a *advertLog) gaps(src netip.Addr, from, to time.Time) (median, worst time.Duration, at time.Time, count int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ds []time.Duration
	var prev time.Time
	for _, t := range a.arrived[src] {
		if t.Before(from) || !t.Before(to) {
			continue
		}
		if !prev.IsZero() {
			d := t.Sub(prev)
			ds = append(ds, d)
			if d > worst {
				worst, at = d, t
			}
		}
		prev = t
	}
	if len(ds) == 0 {
		return 0, 0, time.Time{}, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], worst, at, len(ds) + 1
}

// lastBefore returns when the client last heard src before t (zero if never).
func (a *advertLog) lastBefore(src netip.Addr, t time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Time
	for _, at := range a.arrived[src] {
		if at.Before(t) {
			last = at
		}
	}
	return last
}
