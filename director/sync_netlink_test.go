package director

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// The golden bytes are written for a little-endian host: netlink integers
// are native-endian, and the kernel reads the port with nla_get_u16.
func skipBigEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeStartDaemonGolden(t *testing.T) {
	skipBigEndian(t)
	tests := []struct {
		name string
		d    SyncDaemon
		want string
	}{
		{
			name: "minimal: kernel defaults for group, port, ttl, maxlen",
			d:    SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 51},
			want: `20000380
				08000100 02000000
				09000200 65746830 00000000
				08000300 33000000`,
		},
		{
			name: "everything set; group in network order, port native",
			d: SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 7, MaxLen: 1000,
				Group: netip.MustParseAddr("239.1.2.3"), Port: 8849, TTL: 2},
			want: `40000380
				08000100 01000000
				09000200 65746830 00000000
				08000300 07000000
				06000400 e8030000
				08000500 ef010203
				06000700 91220000
				05000800 02000000`,
		},
		{
			name: "ipv6 group",
			d: SyncDaemon{State: SyncMaster, Interface: "br0", SyncID: 1,
				Group: netip.MustParseAddr("ff02::81")},
			want: `30000380
				08000100 01000000
				08000200 62723000
				08000300 01000000
				14000600 ff020000 00000000 00000000 00000081`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeStartDaemon(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("encodeStartDaemon =\n%x\nwant\n%x", got, want)
			}
		})
	}
}

func TestEncodeStopDaemonGolden(t *testing.T) {
	skipBigEndian(t)
	got, err := encodeStopDaemon(SyncMaster)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "0c000380 08000100 01000000"); !bytes.Equal(got, want) {
		t.Errorf("encodeStopDaemon = %x, want %x", got, want)
	}
	if _, err := encodeStopDaemon(3); err == nil {
		t.Error("encodeStopDaemon(3) succeeded")
	}
}

func TestEncodeStartDaemonRejects(t *testing.T) {
	tests := []struct {
		d    SyncDaemon
		want string
	}{
		{SyncDaemon{State: 0, Interface: "eth0"}, "want master (1) or backup (2)"},
		{SyncDaemon{State: SyncMaster}, "needs an interface"},
		{SyncDaemon{State: SyncMaster, Interface: "a-very-long-ifname"}, "longer than 15 bytes"},
		{SyncDaemon{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("10.0.0.1")}, "not a multicast address"},
	}
	for _, tt := range tests {
		_, err := encodeStartDaemon(tt.d)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("encodeStartDaemon(%+v) error = %v, want containing %q", tt.d, err, tt.want)
		}
	}
}

// The kernel answers GET_DAEMON with the same attribute layout it reads,
// so a decoded request must give back what was encoded.
func TestDecodeDaemonRoundTrip(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: SyncMaster, Interface: "eth0", SyncID: 7, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1},
		{State: SyncBackup, Interface: "veth-x", SyncID: 255, MaxLen: 1472, Group: netip.MustParseAddr("ff02::81"), Port: 9000, TTL: 3},
		{State: SyncBackup, Interface: "lo", SyncID: 0},
	} {
		b, err := encodeStartDaemon(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeDaemon(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != d {
			t.Errorf("round trip: got %+v, want %+v", got, d)
		}
	}
}

// A pre-4.3 kernel reply: state, interface and sync id only.
func TestDecodeDaemonOldKernel(t *testing.T) {
	skipBigEndian(t)
	got, err := decodeDaemon(unhex(t, `20000300 08000100 02000000 09000200 65746830 00000000 08000300 33000000`))
	if err != nil {
		t.Fatal(err)
	}
	want := SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 51}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := decodeDaemon(unhex(t, "08000100 01000000")); err == nil {
		t.Error("decode without daemon attribute succeeded")
	}
}
