package vrrp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"
)

// Authenticated adverts, on the wire as keepalived 2.4 sends them
// (auth_hmac; Internet-Draft draft-cassen-vrrp-auth-hmac-00). The functions
// here are pure: they read no clock and keep no state between calls, so
// the golden tests (adverts keepalived 2.4.3 signed) and the fuzz test
// exercise exactly what runs. The replay state is in auth_replay.go, the
// instance's use of both in auth_gate.go and auth_sign.go.
//
// A 28-byte trailer follows the VRRP message (after the addresses):
//
//	0      1       2..3      4..7  8..9    10..11  12..27
//	type   key id  reserved  sec   subsec  ctr     HMAC-SHA256, first 16 bytes
//
// sec (UTC seconds), subsec (a binary fraction of a second) and ctr (a
// counter within one timestamp) are one 64-bit sequence number, big
// endian. The HMAC covers a 20-byte pseudo-header (family 4 or 6, VRRP
// version, VRID, 0, the sender's address zero-padded to 16 bytes), then the
// message and the trailer through ctr with the checksum field read as zero,
// then 16 zero bytes in place of the HMAC. The IP header is not covered, so
// the copies sent to several unicast peers carry one trailer; the checksum
// is not covered, because the kernel writes the IPv6 one.
const (
	// TrailerLen is the length of the authentication trailer.
	TrailerLen = 28
	// AuthHMACSHA256 is the trailer type of HMAC-SHA256 truncated to 128 bits.
	AuthHMACSHA256 = 1
	// AuthKeyMin and AuthKeyMax bound a key's length in bytes.
	AuthKeyMin = 32
	AuthKeyMax = 64

	authMACLen    = 16
	authMACOff    = TrailerLen - authMACLen // the HMAC's offset in the trailer
	authPseudoLen = 20
)

// Reasons an authenticated instance drops an advert, as the drops metric
// and the status count them.
const (
	ReasonMissing    = "missing"     // enforce: no trailer
	ReasonMalformed  = "malformed"   // wrong length, type or reserved field
	ReasonUnknownKey = "unknown_key" // a key id this instance does not have
	ReasonBadHMAC    = "bad_hmac"    // the HMAC does not verify
	ReasonStale      = "stale"       // anti_replay time: outside the window
	ReasonReplay     = "replay"      // the sequence does not grow
)

// AuthReasons lists the reasons above, in the order the status shows them.
var AuthReasons = []string{ReasonMissing, ReasonMalformed, ReasonUnknownKey, ReasonBadHMAC, ReasonStale, ReasonReplay}

// Trailer is a parsed authentication trailer.
type Trailer struct {
	Type  uint8
	KeyID uint8
	// Reserved must be zero.
	Reserved uint16
	// Seq is sec<<32 | subsec<<16 | ctr.
	Seq uint64
	MAC [authMACLen]byte
}

// ParseTrailer reads a trailer; it only fails on a length other than
// TrailerLen. CheckTrailer says whether the fields are acceptable.
func ParseTrailer(b []byte) (Trailer, bool) {
	var t Trailer
	if len(b) != TrailerLen {
		return t, false
	}
	t.Type, t.KeyID = b[0], b[1]
	t.Reserved = binary.BigEndian.Uint16(b[2:])
	t.Seq = binary.BigEndian.Uint64(b[4:])
	copy(t.MAC[:], b[authMACOff:])
	return t, true
}

// Malformed says whether the trailer is of a kind nobody may send: an
// unknown type or a non-zero reserved field.
func (t *Trailer) Malformed() bool { return t.Type != AuthHMACSHA256 || t.Reserved != 0 }

// SeqTime is the trailer's timestamp (sec and subsec).
func (t *Trailer) SeqTime() time.Time { return seqTime(t.Seq) }

// AuthKey is one configured key, ready to compute HMACs. It keeps scratch
// space so that a computation allocates nothing, which makes it unsafe for
// concurrent use: the sender and the receivers of an instance each hold
// their own.
type AuthKey struct {
	ID     uint8
	mac    hash.Hash
	pseudo [authPseudoLen]byte
	sum    []byte
}

// NewAuthKey returns a key for id with secret (AuthKeyMin..AuthKeyMax
// bytes: config.Parse has checked it).
func NewAuthKey(id uint8, secret []byte) *AuthKey {
	return &AuthKey{ID: id, mac: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size)}
}

// Zero runs of the HMAC input, package-level so that writing them through
// the hash.Hash interface does not move them to the heap on every call.
var (
	zeroChecksum [2]byte
	zeroMAC      [authMACLen]byte
)

// digest computes the truncated HMAC of b (a message and its trailer) sent
// from src. The pseudo-header's version and VRID come from the message
// itself: the receiver has matched the VRID to its instance already.
func (k *AuthKey) digest(src netip.Addr, b []byte) []byte {
	p := &k.pseudo
	*p = [authPseudoLen]byte{}
	if src.Is4() || src.Is4In6() {
		p[0] = 4
		a := src.Unmap().As4()
		copy(p[4:], a[:])
	} else {
		p[0] = 6
		a := src.As16()
		copy(p[4:], a[:])
	}
	p[1] = b[0] >> 4
	p[2] = b[1]
	k.mac.Reset()
	k.mac.Write(p[:])
	k.mac.Write(b[:6])
	k.mac.Write(zeroChecksum[:])
	k.mac.Write(b[8 : len(b)-authMACLen])
	k.mac.Write(zeroMAC[:])
	k.sum = k.mac.Sum(k.sum[:0])
	return k.sum[:authMACLen]
}

// SignAdvert writes the trailer at the end of b, which holds an advert's
// message followed by TrailerLen bytes of room: type, key id, seq, and the
// HMAC of the whole as sent from src. The checksum field may hold anything
// (it is not covered); the IPv6 one covers the trailer, so compute it after.
func SignAdvert(b []byte, src netip.Addr, k *AuthKey, seq uint64) {
	t := b[len(b)-TrailerLen:]
	t[0], t[1], t[2], t[3] = AuthHMACSHA256, k.ID, 0, 0
	binary.BigEndian.PutUint64(t[4:], seq)
	copy(t[authMACOff:], k.digest(src, b))
}

// VerifyMAC says whether the trailer at the end of b (message and trailer,
// as received from src) carries k's HMAC. It compares in constant time.
func VerifyMAC(b []byte, src netip.Addr, k *AuthKey) bool {
	if len(b) < headerLen+TrailerLen {
		return false
	}
	return hmac.Equal(k.digest(src, b), b[len(b)-authMACLen:])
}

// AuthCheck is what VerifyAdvert needs besides the packet: the keys, and
// for anti_replay time the freshness window around now (zero Window: no
// freshness check, anti_replay monotonic).
type AuthCheck struct {
	Keys   []*AuthKey
	Now    time.Time
	Window time.Duration
}

// VerifyAdvert checks the trailer at the end of b (a message and its
// trailer, received from src) in the order that keeps forged packets
// cheap: malformed, then stale (before the HMAC, so a flood of old
// captures costs no digest; the unauthenticated time only ever rejects),
// then the key id, then the HMAC. It returns the trailer and "" when it
// verifies, else the drop reason. The replay check comes after, with the
// state it needs (auth_replay.go).
func VerifyAdvert(b []byte, src netip.Addr, c *AuthCheck) (Trailer, string) {
	if len(b) < headerLen+TrailerLen {
		return Trailer{}, ReasonMalformed
	}
	t, _ := ParseTrailer(b[len(b)-TrailerLen:])
	if t.Malformed() {
		return t, ReasonMalformed
	}
	if c.Window > 0 && !fresh(t.Seq, c.Now, c.Window) {
		return t, ReasonStale
	}
	var k *AuthKey
	for _, x := range c.Keys {
		if x.ID == t.KeyID {
			k = x
			break
		}
	}
	if k == nil {
		return t, ReasonUnknownKey
	}
	if !VerifyMAC(b, src, k) {
		return t, ReasonBadHMAC
	}
	return t, ""
}

// fresh says whether a sequence's timestamp lies within window of now.
func fresh(seq uint64, now time.Time, window time.Duration) bool {
	d := now.Sub(seqTime(seq))
	return d <= window && d >= -window
}

// clockSeq is the sequence number of a clock reading with the counter
// cleared: UTC seconds in the high 32 bits, then 16 bits of fraction.
func clockSeq(now time.Time) uint64 {
	sub := uint64(now.Nanosecond()) << 16 / uint64(time.Second)
	return uint64(uint32(now.Unix()))<<32 | sub<<16
}

// seqTime is the time a sequence number's timestamp stands for (sec counts
// from the Unix epoch, unsigned: it wraps in 2106).
func seqTime(seq uint64) time.Time {
	sec := int64(seq >> 32)
	nsec := int64((seq>>16)&0xffff) * int64(time.Second) >> 16
	return time.Unix(sec, nsec)
}

// seqAfter orders sequence numbers as RFC 1982 serial numbers, so the
// order survives the wrap of the 64-bit field.
func seqAfter(a, b uint64) bool { return int64(a-b) > 0 }

// nextSeq is the sequence number to send after last at clock reading clk
// (clockSeq): the clock when it is ahead of last, else last plus one (ctr
// counts within one timestamp and carries into it). With anti_replay time,
// a last more than window ahead of the clock (the clock was stepped back)
// restarts from the clock, since receivers reject it as stale anyway; with
// monotonic, strict growth is the only guarantee and is kept.
func nextSeq(last, clk uint64, timeMode bool, window time.Duration) uint64 {
	if seqAfter(clk, last) {
		return clk
	}
	ahead := time.Duration(int32(uint32(last>>32)-uint32(clk>>32))) * time.Second
	if timeMode && ahead > window {
		return clk
	}
	return last + 1
}

// setChecksum writes the checksum of an encoded advert, trailer or not
// (signed): the IPv4 one covers the message without the trailer (with the
// pseudo-header of form, whose length counts the message alone), the IPv6
// one everything after the IP header, as the kernel computes it.
func setChecksum(b []byte, src, dst netip.Addr, form Checksum, signed bool) {
	v4 := src.Is4() || src.Is4In6()
	msg := b
	if v4 && signed {
		msg = b[:len(b)-TrailerLen]
	}
	b[6], b[7] = 0, 0
	sum := checksum(msg, src, dst, !v4 || form == ChecksumRFC5798)
	b[6], b[7] = byte(sum>>8), byte(sum)
}
