package vrrp

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/lvsd/lvsd/config"
)

// authSettings is [vrrp.auth] in the form the instance uses; the zero
// value is no authentication.
type authSettings struct {
	on        bool
	signs     bool // permissive, enforce
	enforce   bool
	mode      string
	timeMode  bool // anti_replay time
	window    time.Duration
	activeKey uint8
	keys      []authKeySetting
}

type authKeySetting struct {
	id     uint8
	secret []byte
}

func authSettingsOf(a *config.VRRPAuth) authSettings {
	if a == nil {
		return authSettings{}
	}
	s := authSettings{on: true, signs: a.Signs(), enforce: a.Mode == config.AuthEnforce, mode: a.Mode,
		timeMode: a.AntiReplay == config.AntiReplayTime, window: a.TimeWindow.Duration, activeKey: uint8(a.ActiveKey)}
	for _, k := range a.Keys {
		s.keys = append(s.keys, authKeySetting{id: uint8(k.ID), secret: bytes.Clone(k.Secret.Bytes())})
	}
	return s
}

func (a *authSettings) antiReplay() string {
	if a.timeMode {
		return config.AntiReplayTime
	}
	return config.AntiReplayMono
}

// equal compares two settings, keys included (a reload that re-read a
// rotated key file changes them).
func (a *authSettings) equal(b *authSettings) bool {
	return a.on == b.on && a.mode == b.mode && a.timeMode == b.timeMode && a.window == b.window &&
		a.activeKey == b.activeKey && slices.EqualFunc(a.keys, b.keys, func(x, y authKeySetting) bool {
		return x.id == y.id && bytes.Equal(x.secret, y.secret)
	})
}

// authKeys makes a ready key for every configured one (each user of keys
// needs its own: an AuthKey is not safe for concurrent use).
func (a *authSettings) authKeys() []*AuthKey {
	out := make([]*AuthKey, 0, len(a.keys))
	for _, k := range a.keys {
		out = append(out, NewAuthKey(k.id, k.secret))
	}
	return out
}

// signer signs an instance's adverts (under the executor's lock, on the
// timing path: no allocation). Its sequence number outlives a reload, so
// a rotated key or a new mode never sends a sequence a peer has seen.
type signer struct {
	key      *AuthKey // nil: not signing
	timeMode bool
	window   time.Duration
	seq      uint64
}

// configure follows reloaded settings.
func (s *signer) configure(a *authSettings) {
	s.key, s.timeMode, s.window = nil, a.timeMode, a.window
	if !a.on || !a.signs {
		return
	}
	for _, k := range a.keys {
		if k.id == a.activeKey {
			s.key = NewAuthKey(k.id, k.secret)
		}
	}
}

// room is what an encoded advert needs after its message.
func (s *signer) room() int {
	if s.key == nil {
		return 0
	}
	return TrailerLen
}

// sign stamps one logical advert: the first buffer gets priority, a new
// sequence number and its HMAC, and every other destination's copy the
// same trailer (the HMAC covers neither the IP header nor the checksum).
// It reports whether it signed; the caller then writes the checksums.
func (s *signer) sign(now time.Time, src netip.Addr, ads []encodedAdvert, priority uint8) bool {
	if s.key == nil || len(ads) == 0 {
		return false
	}
	s.seq = nextSeq(s.seq, clockSeq(now), s.timeMode, s.window)
	first := ads[0].b
	first[2] = priority
	SignAdvert(first, src, s.key, s.seq)
	for i := 1; i < len(ads); i++ {
		b := ads[i].b
		copy(b[len(b)-TrailerLen:], first[len(first)-TrailerLen:])
	}
	return true
}
