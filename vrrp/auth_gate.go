package vrrp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gate is an instance's receive-side check of what the settings demand
// beyond decoding: unicast min_ttl, and with [vrrp.auth] the trailer. It
// runs before the executor's lock, so a rejected advert never reaches the
// state machine and a flood of them costs the timers nothing but CPU. Its
// own lock covers the replay table and the counters; it is taken by the
// receiving goroutine and, before a Master_Down expiry, by the timing
// thread, and nothing does I/O under it.
type gate struct {
	mu        sync.Mutex
	vrid      uint8
	source    netip.Addr
	multicast bool
	peers     []netip.Addr
	minTTL    int
	version   int    // 2 or 3: an advert of the other is dropped
	v2Auth    V2Auth // what a v2 advert must carry
	auth      authSettings
	keys      []*AuthKey
	replay    replayTable

	verified, unsigned uint64
	lastUnsigned       netip.Addr
	drops              map[string]uint64
	logs               map[string]*logLimit
	ignoredTrailer     bool // logged once: a signed advert and no [vrrp.auth]
	signedC, unsignedC prometheus.Counter
}

// authLogEvery is how often a drop reason is logged per instance at most:
// a flood of forged adverts must not become a flood of log lines.
const authLogEvery = 10 * time.Second

type logLimit struct {
	last       time.Time
	suppressed uint64
}

// configure follows the instance's settings (executor's lock held). The
// replay state and the counters stay.
func (g *gate) configure(s *settings, met *metrics) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.vrid, g.source, g.multicast, g.minTTL = s.vrid, s.source, s.multicast(), s.minTTL
	g.version, g.v2Auth = s.version, s.v2Auth
	g.peers = slices.Clone(s.peers)
	if !g.auth.equal(&s.auth) {
		g.auth = s.auth
		g.keys = s.auth.authKeys()
	}
	g.replay.size(len(s.peers))
	if g.drops == nil {
		g.drops, g.logs = map[string]uint64{}, map[string]*logLimit{}
	}
	if s.auth.on && met != nil && g.signedC == nil {
		g.signedC = met.authAccepted.WithLabelValues(s.name, "signed")
		g.unsignedC = met.authAccepted.WithLabelValues(s.name, "unsigned")
	}
}

// ttlDrop says whether a unicast advert arrived with less than min_ttl.
func (g *gate) ttlDrop(p *Packet) bool {
	if p.Dst.IsMulticast() || p.TTL < 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return p.TTL < g.minTTL
}

// verdict is what admit decided; log, when set, is said after the lock.
type verdict struct {
	reason string // "" admits
	log    func(*slog.Logger)
}

// admit checks an advert of the instance's VRID as [vrrp.auth] asks.
// payload is the whole VRRP packet and extra what follows the message.
// Adverts of other VRIDs pass untouched: the executor ignores them.
func (g *gate) admit(now time.Time, name string, src netip.Addr, ad *Advert, payload, extra []byte) verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ad.VRID != g.vrid || src == g.source {
		return verdict{} // the executor ignores the one, drops the other
	}
	if v := g.admitVersion(now, name, src, ad); v.reason != "" || versionOf(g.version) == version2 {
		return v // VRRPv2 has its password, and no [vrrp.auth]
	}
	if !g.auth.on {
		if len(extra) == TrailerLen && !g.ignoredTrailer {
			g.ignoredTrailer = true
			return verdict{log: func(l *slog.Logger) {
				l.Info("vrrp: a peer signs its adverts and this instance has no [vrrp.auth]; the trailer is not checked", "instance", name, "src", src)
			}}
		}
		return verdict{}
	}
	// A unicast instance knows its senders: a stranger is dropped before
	// any digest is spent on it (the executor would drop it anyway).
	if !g.multicast && !slices.Contains(g.peers, src) {
		return verdict{reason: "unknown_sender"}
	}
	var reason string
	var keyID uint8
	switch {
	case len(extra) == 0:
		if !g.auth.enforce {
			g.unsigned++
			g.lastUnsigned = src
			inc(g.unsignedC)
			return verdict{}
		}
		reason = ReasonMissing
	case len(extra) != TrailerLen:
		reason = ReasonMalformed
	default:
		c := AuthCheck{Keys: g.keys, Now: now}
		if g.auth.timeMode {
			c.Window = g.auth.window
		}
		var t Trailer
		t, reason = VerifyAdvert(payload, src, &c)
		keyID = t.KeyID
		if reason == "" && !g.replay.accept(src, t.Seq, now, c.Window) {
			reason = ReasonReplay
		}
		if reason == "" {
			g.verified++
			inc(g.signedC)
			return verdict{}
		}
	}
	g.drops[reason]++
	return verdict{reason: reason, log: g.logDrop(now, name, reason, src, keyID)}
}

// Drop reasons of the version check: an advert of the other VRRP version,
// and a VRRPv2 advert whose authentication type or password is not ours.
const (
	ReasonV2AuthType = "auth_type"
	ReasonV2Password = "password"
)

// admitVersion drops an advert of the other VRRP version, and a VRRPv2 one
// without our authentication type or, with a password, our password, as
// keepalived does: a pair that disagrees on either is misconfigured, and
// each side says so in its log (once every authLogEvery) and its drops
// metric rather than electing a master from the other's adverts.
func (g *gate) admitVersion(now time.Time, name string, src netip.Addr, ad *Advert) verdict {
	theirs, ours := versionOf(int(ad.Version)), versionOf(g.version)
	var reason, problem string
	switch {
	case theirs != ours:
		reason = ReasonVersion
		problem = fmt.Sprintf("the peer speaks VRRPv%d and this instance version %d: set the same version on both", theirs, ours)
	case ours != version2:
		return verdict{}
	case ad.V2Auth.Type != g.v2Auth.Type:
		reason = ReasonV2AuthType
		problem = fmt.Sprintf("the peer's VRRPv2 auth type is %d, ours %d (0 none, 1 auth_pass)", ad.V2Auth.Type, g.v2Auth.Type)
	case g.v2Auth.Type == V2AuthPassword && ad.V2Auth.Data != g.v2Auth.Data:
		reason = ReasonV2Password
		problem = "the peer's VRRPv2 password (auth_pass) is not ours"
	default:
		return verdict{}
	}
	ll := g.limit(reason)
	if !ll.due(now) {
		return verdict{reason: reason}
	}
	suppressed := ll.take(now)
	return verdict{reason: reason, log: func(l *slog.Logger) {
		l.Warn("vrrp: advert dropped", "instance", name, "reason", reason, "src", src, "problem", problem,
			"dropped_unlogged", suppressed, "log_every", authLogEvery)
	}}
}

// versionOf reads anything but 2 as 3, the default.
func versionOf(v int) int {
	if v == version2 {
		return version2
	}
	return version3
}

func (g *gate) limit(reason string) *logLimit {
	ll := g.logs[reason]
	if ll == nil {
		ll = &logLimit{}
		g.logs[reason] = ll
	}
	return ll
}

// due says whether a drop may be logged now; if not, it is counted.
func (ll *logLimit) due(now time.Time) bool {
	if !ll.last.IsZero() && now.Sub(ll.last) < authLogEvery {
		ll.suppressed++
		return false
	}
	return true
}

// take starts a new period at now and returns the drops left unlogged.
func (ll *logLimit) take(now time.Time) uint64 {
	n := ll.suppressed
	ll.last, ll.suppressed = now, 0
	return n
}

// logDrop returns the log line of a dropped advert, or nil while its
// reason was logged less than authLogEvery ago.
func (g *gate) logDrop(now time.Time, name, reason string, src netip.Addr, keyID uint8) func(*slog.Logger) {
	ll := g.limit(reason)
	if !ll.due(now) {
		return nil
	}
	suppressed := ll.take(now)
	return func(l *slog.Logger) {
		l.Warn("vrrp: advert failed authentication, dropped", "instance", name, "reason", reason, "src", src,
			"key_id", keyID, "dropped_unlogged", suppressed, "log_every", authLogEvery)
	}
}

func inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

// AuthStatus is an instance's [vrrp.auth] as the status API shows it: key
// ids, never key material.
type AuthStatus struct {
	Mode       string        `json:"mode"`
	AntiReplay string        `json:"anti_replay"`
	TimeWindow time.Duration `json:"time_window_ns"`
	// ActiveKey signs; 0 in receive-only.
	ActiveKey int   `json:"active_key"`
	KeyIDs    []int `json:"key_ids"`
	// Verified adverts carried a valid trailer; Unsigned were accepted
	// without one (receive-only, permissive): before moving a pair to
	// enforce, it must stop growing on both nodes.
	Verified         uint64 `json:"verified"`
	Unsigned         uint64 `json:"unsigned_accepted"`
	LastUnsignedFrom string `json:"last_unsigned_from,omitempty"`
	// Drops counts rejected adverts by reason (AuthReasons).
	Drops map[string]uint64 `json:"drops"`
}

// status reports the gate with the settings the instance runs.
func (g *gate) status(a *authSettings) *AuthStatus {
	if !a.on {
		return nil
	}
	st := &AuthStatus{Mode: a.mode, AntiReplay: a.antiReplay(), TimeWindow: a.window, Drops: map[string]uint64{}}
	if a.signs {
		st.ActiveKey = int(a.activeKey)
	}
	for _, k := range a.keys {
		st.KeyIDs = append(st.KeyIDs, int(k.id))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st.Verified, st.Unsigned = g.verified, g.unsigned
	if g.lastUnsigned.IsValid() {
		st.LastUnsignedFrom = g.lastUnsigned.String()
	}
	for _, r := range AuthReasons {
		st.Drops[r] = g.drops[r]
	}
	return st
}
