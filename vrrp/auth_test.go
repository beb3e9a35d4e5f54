package vrrp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The golden adverts: what keepalived 2.4.3 signed (testdata/keepalived-2.4.3,
// captured in network namespaces), with key 1 = the bytes 0x00..0x1f.
var (
	kaKey1 = mustHexKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	kaKey2 = mustHexKey("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100")
)

func mustHexKey(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

type kaVector struct {
	file     string
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	TTL      int    `json:"ttl"`
	PDU      string `json:"pdu"`
	Len      int    `json:"len"`
	src, dst netip.Addr
	b        []byte
}

// kaVectors reads every captured advert. The IPv6 captures carry no
// destination; it is the group for multicast and the configured peer for
// unicast, whose captures also hold the instance's multicast-addressed
// adverts from its link-local address (keepalived sends those too).
func kaVectors(t *testing.T) []kaVector {
	t.Helper()
	files, err := filepath.Glob("testdata/keepalived-2.4.3/*.jsonl")
	if err != nil || len(files) != 4 {
		t.Fatalf("want 4 vector files, have %v (%v)", files, err)
	}
	var out []kaVector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			v := kaVector{file: filepath.Base(f)}
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			v.src = netip.MustParseAddr(v.Src)
			v.b = mustHex(t, v.PDU)
			if len(v.b) != v.Len {
				t.Fatalf("%s: len %d, pdu has %d bytes", f, v.Len, len(v.b))
			}
			switch {
			case v.src.Is4():
				v.dst = netip.MustParseAddr(v.Dst)
			case v.src.IsLinkLocalUnicast():
				v.dst = GroupV6
			default:
				v.dst = netip.MustParseAddr("2001:db8::3")
			}
			out = append(out, v)
		}
	}
	return out
}

// TestKeepalivedVectorsVerify: every advert keepalived 2.4.3 signed decodes
// (the IPv4 checksum covering the message without its trailer, the IPv6
// one covering both) and verifies with key 1, at the time it was sent and
// under anti_replay monotonic.
func TestKeepalivedVectorsVerify(t *testing.T) {
	keys := []*AuthKey{NewAuthKey(2, kaKey2), NewAuthKey(1, kaKey1)}
	for _, v := range kaVectors(t) {
		ad, _, extra, err := decode(v.b, v.src, v.dst)
		if err != nil {
			t.Fatalf("%s %s: decode: %v", v.file, v.PDU, err)
		}
		if ad.VRID != 51 || ad.Priority != 200 || ad.Interval != 100*time.Millisecond || len(ad.Addrs) != 1 {
			t.Errorf("%s: decoded %+v", v.file, ad)
		}
		if len(extra) != TrailerLen {
			t.Fatalf("%s: %d bytes after the message, want the trailer", v.file, len(extra))
		}
		tr, _ := ParseTrailer(extra)
		if tr.KeyID != 1 || tr.Type != AuthHMACSHA256 || tr.Malformed() {
			t.Errorf("%s: trailer %+v", v.file, tr)
		}
		for _, window := range []time.Duration{5 * time.Second, 0} {
			if _, reason := VerifyAdvert(v.b, v.src, &AuthCheck{Keys: keys, Now: tr.SeqTime().Add(time.Second), Window: window}); reason != "" {
				t.Errorf("%s %s (window %v): %s", v.file, v.PDU, window, reason)
			}
		}
	}
}

// TestKeepalivedVectorsSign: lvsd's encoder and signer, given what
// keepalived advertised and the sequence number it used, produce the very
// bytes keepalived sent, checksum included (the IPv6 checksum as the kernel
// writes it from IPV6_CHECKSUM).
func TestKeepalivedVectorsSign(t *testing.T) {
	k := NewAuthKey(1, kaKey1)
	for _, v := range kaVectors(t) {
		ad, form, _, err := decode(v.b, v.src, v.dst)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ad.Encode(v.src, v.dst, form)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, make([]byte, TrailerLen)...)
		seq := binary.BigEndian.Uint64(v.b[len(v.b)-TrailerLen+4:])
		SignAdvert(b, v.src, k, seq)
		setChecksum(b, v.src, v.dst, form, true)
		if !bytes.Equal(b, v.b) {
			t.Errorf("%s: signed\n%x, keepalived sent\n%x", v.file, b, v.b)
		}
	}
}

// TestVerifyRejects: each way a trailer can be wrong, on a keepalived
// advert, gives its reason; the order is malformed, stale, unknown key,
// HMAC.
func TestVerifyRejects(t *testing.T) {
	v := kaVectors(t)[0]
	tr, _ := ParseTrailer(v.b[len(v.b)-TrailerLen:])
	at := tr.SeqTime()
	keys := []*AuthKey{NewAuthKey(1, kaKey1), NewAuthKey(2, kaKey2)}
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(v.b)
		f(b)
		return b
	}
	trailer := len(v.b) - TrailerLen
	for _, tt := range []struct {
		name   string
		b      []byte
		src    netip.Addr
		keys   []*AuthKey
		now    time.Time
		window time.Duration
		want   string
	}{
		{"verifies", v.b, v.src, keys, at, 5 * time.Second, ""},
		{"other type", edit(func(b []byte) { b[trailer] = 2 }), v.src, keys, at, 5 * time.Second, ReasonMalformed},
		{"reserved set", edit(func(b []byte) { b[trailer+3] = 1 }), v.src, keys, at, 5 * time.Second, ReasonMalformed},
		{"too short", v.b[:headerLen+TrailerLen-1], v.src, keys, at, 5 * time.Second, ReasonMalformed},
		{"6 s late", v.b, v.src, keys, at.Add(6 * time.Second), 5 * time.Second, ReasonStale},
		{"6 s early", v.b, v.src, keys, at.Add(-6 * time.Second), 5 * time.Second, ReasonStale},
		{"late, monotonic", v.b, v.src, keys, at.Add(time.Hour), 0, ""},
		{"stale before unknown key", edit(func(b []byte) { b[trailer+1] = 9 }), v.src, keys, at.Add(time.Minute), 5 * time.Second, ReasonStale},
		{"key 9 unknown", edit(func(b []byte) { b[trailer+1] = 9 }), v.src, keys, at, 5 * time.Second, ReasonUnknownKey},
		{"key 1 not configured", v.b, v.src, keys[1:], at, 5 * time.Second, ReasonUnknownKey},
		{"signed with 1, claims 2", edit(func(b []byte) { b[trailer+1] = 2 }), v.src, keys, at, 5 * time.Second, ReasonBadHMAC},
		{"priority raised", edit(func(b []byte) { b[2] = 254 }), v.src, keys, at, 5 * time.Second, ReasonBadHMAC},
		{"other VRID", edit(func(b []byte) { b[1] = 52 }), v.src, keys, at, 5 * time.Second, ReasonBadHMAC},
		{"other sender", v.b, netip.MustParseAddr("192.0.2.9"), keys, at, 5 * time.Second, ReasonBadHMAC},
		{"sequence changed", edit(func(b []byte) { b[trailer+11]++ }), v.src, keys, at, 5 * time.Second, ReasonBadHMAC},
		{"HMAC changed", edit(func(b []byte) { b[len(b)-1]++ }), v.src, keys, at, 5 * time.Second, ReasonBadHMAC},
		{"checksum changed (not covered)", edit(func(b []byte) { b[6]++ }), v.src, keys, at, 5 * time.Second, ""},
	} {
		if _, got := VerifyAdvert(tt.b, tt.src, &AuthCheck{Keys: tt.keys, Now: tt.now, Window: tt.window}); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSequence(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	clk := clockSeq(at)
	if clk>>32 != uint64(at.Unix()) || clk>>16&0xffff != 0x8000 || clk&0xffff != 0 {
		t.Fatalf("clockSeq = %#x", clk)
	}
	if got := seqTime(clk); !got.Equal(at) {
		t.Errorf("seqTime = %v, want %v", got, at)
	}
	for _, tt := range []struct {
		name      string
		last, clk uint64
		timeMode  bool
		want      uint64
	}{
		{"clock ahead", clk - 1000, clk, true, clk},
		{"same timestamp: the counter grows", clk, clk, true, clk + 1},
		{"counter carries into the timestamp", clk | 0xffff, clk, true, clk + 0x10000},
		{"clock 3 s behind: keep growing", clk + 3<<32, clk, true, clk + 3<<32 + 1},
		{"clock 10 s behind, time: restart from the clock", clk + 10<<32, clk, true, clk},
		{"clock 10 s behind, monotonic: keep growing", clk + 10<<32, clk, false, clk + 10<<32 + 1},
		{"wrap of the field", ^uint64(0), 5, true, 5},
	} {
		if got := nextSeq(tt.last, tt.clk, tt.timeMode, 5*time.Second); got != tt.want {
			t.Errorf("%s: nextSeq = %#x, want %#x", tt.name, got, tt.want)
		}
	}
	if !seqAfter(0, ^uint64(0)) || seqAfter(^uint64(0), 0) {
		t.Error("seqAfter does not order across the wrap")
	}
}

// TestSignAllocatesNothing: signing runs on the timing path.
func TestSignAllocatesNothing(t *testing.T) {
	v := kaVectors(t)[0]
	k := NewAuthKey(1, kaKey1)
	b := bytes.Clone(v.b)
	seq := uint64(1)
	if n := testing.AllocsPerRun(1000, func() {
		seq++
		SignAdvert(b, v.src, k, seq)
		setChecksum(b, v.src, v.dst, ChecksumRFC5798, true)
	}); n != 0 {
		t.Errorf("signing allocates %v times, want 0", n)
	}
}

// FuzzTrailer: whatever follows a message, decoding and verifying never
// panic, and nothing but the key's own signature verifies.
func FuzzTrailer(f *testing.F) {
	src := netip.MustParseAddr("192.0.2.1")
	for _, s := range []string{
		"3133c801000aa1cbc0000264010100006b0cec8ff6d80000b56f2dd293d5d7efda85b32bb182be91",
		"3133c801000aa1cbc0000264",
		"3133c801000aa1cbc000026401",
		"3133c801000aa1cbc00002640101000000000000000000000000000000000000000000000000000000",
		"3133c800000aa1cb",
	} {
		f.Add(mustHexKey(s))
	}
	keys := []*AuthKey{NewAuthKey(1, kaKey1), NewAuthKey(2, kaKey2)}
	now := time.Unix(0x6b0cec8f, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		ad, _, extra, err := decode(b, src, GroupV4)
		if err != nil {
			return
		}
		if len(extra) == TrailerLen {
			if _, ok := ParseTrailer(extra); !ok {
				t.Fatal("a TrailerLen tail does not parse")
			}
		}
		_, reason := VerifyAdvert(b, src, &AuthCheck{Keys: keys, Now: now})
		if reason == "" {
			// Only a real signature verifies: sign the same message and
			// sequence, and the bytes must be those received.
			if len(extra) != TrailerLen {
				t.Fatalf("verified without a trailer: %x", b)
			}
			tr, _ := ParseTrailer(extra)
			resigned := bytes.Clone(b)
			k := keys[0]
			if tr.KeyID == 2 {
				k = keys[1]
			}
			SignAdvert(resigned, src, k, tr.Seq)
			if !bytes.Equal(resigned, b) {
				t.Fatalf("%x verified but is not the signature of %+v", b, ad)
			}
		}
	})
}

// BenchmarkSignAdvert: what signing adds to an advert on the timing path.
func BenchmarkSignAdvert(b *testing.B) {
	src := netip.MustParseAddr("192.0.2.1")
	buf := mustHexKey("3133c801000aa1cbc0000264010100006b0cec8ff6d80000b56f2dd293d5d7efda85b32bb182be91")
	k := NewAuthKey(1, kaKey1)
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		SignAdvert(buf, src, k, seq)
		setChecksum(buf, src, GroupV4, ChecksumRFC5798, true)
	}
}
