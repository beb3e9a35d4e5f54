package daemon

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/vrrp"
)

// lowerPeer is a segment with a live master of priority 100 on it: every
// conn receives that master's advert every 50 ms. The advert says 200 ms,
// which a backup adopts: its Master_Down_Interval (about 0.7 s) then ends
// long before the slow check's first verdict.
type lowerPeer struct{ t *testing.T }

func (p lowerPeer) Open(iface string, source netip.Addr, multicast bool) (vrrp.Conn, error) {
	ad := vrrp.Advert{VRID: 51, Priority: 100, Interval: 200 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}
	src := netip.MustParseAddr("192.0.2.3")
	payload, err := ad.Encode(src, vrrp.GroupV4, vrrp.ChecksumRFC5798)
	if err != nil {
		p.t.Fatal(err)
	}
	return &peerConn{pkt: vrrp.Packet{Src: src, Dst: vrrp.GroupV4, TTL: 255, Payload: payload},
		every: 50 * time.Millisecond, next: time.Now(), closed: make(chan struct{})}, nil
}

func (lowerPeer) Announce(string, []netip.Prefix) error { return nil }

// peerConn is a backup's socket beside that master. The master's adverts
// arrive by the wall clock, one every 50 ms, whether or not lvsd runs to
// read them, as a real peer's queue in the kernel; like the raw socket it
// hands over one already there without waiting (ReceivePending), which
// the executor asks for before it lets Master_Down expire. An advert made
// by a goroutine of this process would instead stall with lvsd, and a
// stall of the test binary longer than Master_Down_Interval would look
// like a dead master.
type peerConn struct {
	pkt    vrrp.Packet
	every  time.Duration
	mu     sync.Mutex
	next   time.Time // when the next advert arrives
	once   sync.Once
	closed chan struct{}
}

// take takes the advert that has arrived by now, if one has, or says how
// long until one does. Adverts missed meanwhile are one: they all say the
// same.
func (c *peerConn) take() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if wait := c.next.Sub(now); wait > 0 {
		return wait, false
	}
	c.next = now.Add(c.every)
	return 0, true
}

func (c *peerConn) Send([]byte, netip.Addr) error { return nil }

func (c *peerConn) Receive() (vrrp.Packet, error) {
	for {
		wait, ok := c.take()
		if ok {
			return c.pkt, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.closed:
			t.Stop()
			return vrrp.Packet{}, net.ErrClosed
		}
	}
}

// ReceivePending is the raw socket's: an advert already queued, at once.
func (c *peerConn) ReceivePending() (vrrp.Packet, bool) {
	select {
	case <-c.closed:
		return vrrp.Packet{}, false
	default:
	}
	_, ok := c.take()
	return c.pkt, ok
}

func (c *peerConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// A director that starts beside a live master of lower priority does not
// preempt it while its first health checks are still deciding: its IPVS
// table would hold none of the servers yet to prove healthy. It preempts
// once they are decided.
func TestPreemptWaitsForFirstChecks(t *testing.T) {
	c := newLabConfig(t)
	// A second service whose check needs at least 1.5 s for its first
	// verdict (two passes 1.5 s apart), against a Master_Down_Interval of
	// about 0.7 s.
	c.Extra = labVRRP + `
[[service]]
name = "slow"
vip = "192.0.2.10"
port = 81

  [[service.check]]
  type = "tcp"
  interval = "1500ms"
  timeout = "300ms"
  rise = 2

  [[service.realserver]]
  address = "` + c.Good + `"
`
	l := startLab(t, c, WithVRRP(vrrp.Options{Transport: lowerPeer{t}, Links: upLinks{}, Announcer: lowerPeer{t}}))
	cfg, err := config.Load(l.path)
	if err != nil {
		t.Fatal(err)
	}
	// The slow check: a first run within 1.5 s, then two more (fall 3
	// outlasts rise 2), the last taking up to its timeout, plus a second.
	if b, want := firstVerdictBound(cfg), 1500*time.Millisecond+2*1500*time.Millisecond+300*time.Millisecond+time.Second; b != want {
		t.Errorf("firstVerdictBound = %v, want %v", b, want)
	}
	var decided bool
	var sawHold bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not master 10 s after the checks decided (%v); status %+v", decided, l.d.vr.Status())
		}
		undecided := l.d.dir.Undecided()
		st := l.d.vr.Status()[0]
		if st.State == "master" {
			if undecided > 0 {
				t.Fatalf("preempted the live master with %d real servers undecided", undecided)
			}
			break
		}
		if undecided > 0 && st.State == "backup" && st.MasterPriority == 100 {
			if st.PreemptHeld && !sawHold {
				sawHold = true
				if table := l.statusTable(); !strings.Contains(table, "backup (no preempt until first checks)") {
					t.Errorf("the status table does not show the hold:\n%s", table)
				}
			}
			if !st.PreemptHeld {
				t.Errorf("backup beside a lower master, %d undecided, but preemption is not held: %+v", undecided, st)
			}
		}
		decided = decided || undecided == 0
	}
	if !sawHold {
		t.Error("never saw the backup hold preemption")
	}
	if st := l.d.vr.Status()[0]; st.PreemptHeld {
		t.Errorf("master with preemption still held: %+v", st)
	}
}
