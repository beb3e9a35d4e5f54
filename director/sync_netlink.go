package director

// IPVS connection-sync daemon control over generic netlink.
//
// The kernel runs at most one master (sending) and one backup (receiving)
// sync daemon per network namespace. They are started, stopped and listed
// with the IPVS family's NEW_DAEMON, DEL_DAEMON and GET_DAEMON commands,
// whose attributes are nested in IPVS_CMD_ATTR_DAEMON. The encodings below
// follow net/netfilter/ipvs/ip_vs_ctl.c (ip_vs_genl_new_daemon and
// ip_vs_genl_fill_daemon): integers are native-endian netlink integers, the
// port included (the kernel applies htons itself when it builds the socket
// address); the IPv4 group is an in_addr, i.e. four bytes in network order.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SyncState selects one of the two kernel sync daemons.
type SyncState uint32

// Values of IPVS_DAEMON_ATTR_STATE (IP_VS_STATE_MASTER / IP_VS_STATE_BACKUP).
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("SyncState(%d)", uint32(s))
}

// Kernel defaults, applied by start_sync_thread when an attribute is absent.
const (
	DefaultSyncPort = 8848
	DefaultSyncTTL  = 1
)

// DefaultSyncGroup is the kernel's IPv4 sync group, 224.0.0.81.
var DefaultSyncGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// SyncDaemon is one kernel sync daemon's settings. Zero values of MaxLen,
// Group, Port and TTL leave the kernel's defaults (MaxLen from the MTU).
type SyncDaemon struct {
	State     SyncState
	Interface string
	// SyncID tags messages; a backup with a non-zero SyncID ignores
	// messages carrying another. The wire field is one byte.
	SyncID uint8
	MaxLen uint16
	Group  netip.Addr // IPv4 or IPv6 multicast group
	Port   uint16
	TTL    uint8
}

// genetlink constants from include/uapi/linux/ip_vs.h.
const (
	ipvsGenlName    = "IPVS"
	ipvsGenlVersion = 1

	ipvsCmdNewDaemon = 9
	ipvsCmdDelDaemon = 10
	ipvsCmdGetDaemon = 11

	ipvsCmdAttrDaemon = 3

	ipvsDaemonAttrState      = 1
	ipvsDaemonAttrMcastIfn   = 2
	ipvsDaemonAttrSyncID     = 3
	ipvsDaemonAttrSyncMaxlen = 4
	ipvsDaemonAttrMcastGroup = 5
	ipvsDaemonAttrMcastGrp6  = 6
	ipvsDaemonAttrMcastPort  = 7
	ipvsDaemonAttrMcastTTL   = 8

	ifNameMax = 16 // IP_VS_IFNAME_MAXLEN, including the NUL
)

// Validate reports settings the kernel would reject or silently mangle.
func (d SyncDaemon) Validate() error {
	if d.State != SyncMaster && d.State != SyncBackup {
		return fmt.Errorf("sync daemon state %d: want master (1) or backup (2)", uint32(d.State))
	}
	if d.Interface == "" {
		return errors.New("sync daemon needs an interface")
	}
	if len(d.Interface) >= ifNameMax {
		return fmt.Errorf("sync interface %q: longer than %d bytes", d.Interface, ifNameMax-1)
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return fmt.Errorf("sync group %s is not a multicast address", d.Group)
	}
	return nil
}

// encodeStartDaemon builds the attributes of a NEW_DAEMON request.
func encodeStartDaemon(d SyncDaemon) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(ipvsDaemonAttrState, uint32(d.State))
		nae.String(ipvsDaemonAttrMcastIfn, d.Interface)
		nae.Uint32(ipvsDaemonAttrSyncID, uint32(d.SyncID))
		if d.MaxLen != 0 {
			nae.Uint16(ipvsDaemonAttrSyncMaxlen, d.MaxLen)
		}
		switch {
		case d.Group.Is4():
			g := d.Group.As4()
			nae.Bytes(ipvsDaemonAttrMcastGroup, g[:])
		case d.Group.Is6():
			g := d.Group.As16()
			nae.Bytes(ipvsDaemonAttrMcastGrp6, g[:])
		}
		if d.Port != 0 {
			nae.Uint16(ipvsDaemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			nae.Uint8(ipvsDaemonAttrMcastTTL, d.TTL)
		}
		return nil
	})
	return ae.Encode()
}

// encodeStopDaemon builds the attributes of a DEL_DAEMON request; the
// kernel only reads the state.
func encodeStopDaemon(state SyncState) ([]byte, error) {
	if state != SyncMaster && state != SyncBackup {
		return nil, fmt.Errorf("sync daemon state %d: want master (1) or backup (2)", uint32(state))
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(ipvsDaemonAttrState, uint32(state))
		return nil
	})
	return ae.Encode()
}

// decodeDaemon parses the attributes of one GET_DAEMON dump message.
// Kernels before 4.3 send only state, interface and sync id.
func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	found := false
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return d, err
	}
	for ad.Next() {
		if ad.Type() != ipvsCmdAttrDaemon {
			continue
		}
		found = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case ipvsDaemonAttrState:
					d.State = SyncState(nad.Uint32())
				case ipvsDaemonAttrMcastIfn:
					d.Interface = nad.String()
				case ipvsDaemonAttrSyncID:
					d.SyncID = uint8(nad.Uint32())
				case ipvsDaemonAttrSyncMaxlen:
					d.MaxLen = nad.Uint16()
				case ipvsDaemonAttrMcastGroup:
					if a, ok := netip.AddrFromSlice(nad.Bytes()); ok && a.Is4() {
						d.Group = a
					}
				case ipvsDaemonAttrMcastGrp6:
					if a, ok := netip.AddrFromSlice(nad.Bytes()); ok {
						d.Group = a
					}
				case ipvsDaemonAttrMcastPort:
					d.Port = nad.Uint16()
				case ipvsDaemonAttrMcastTTL:
					d.TTL = nad.Uint8()
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return d, fmt.Errorf("decode sync daemon: %w", err)
	}
	if !found {
		return d, errors.New("decode sync daemon: no daemon attribute")
	}
	return d, nil
}

// SyncDaemonControl starts, stops and lists the kernel sync daemons.
// KernelSync implements it; tests use a fake.
type SyncDaemonControl interface {
	StartDaemon(ctx context.Context, d SyncDaemon) error
	StopDaemon(ctx context.Context, state SyncState) error
	Daemons(ctx context.Context) ([]SyncDaemon, error)
}

// ErrNoDaemon is returned by StopDaemon when no daemon of that state runs.
var ErrNoDaemon = errors.New("no such sync daemon")

// ErrDaemonRunning is returned by StartDaemon when a daemon of that state
// already runs (the kernel allows one per state and namespace).
var ErrDaemonRunning = errors.New("sync daemon already running")

// KernelSync talks to the IPVS generic netlink family of one network
// namespace. It is safe for concurrent use: netlink.Conn serialises
// requests.
type KernelSync struct {
	conn   *genetlink.Conn
	family genetlink.Family
}

// DialKernelSync opens the IPVS family in the caller's namespace, or in the
// namespace whose file descriptor is netns when netns is non-zero.
func DialKernelSync(netns int) (*KernelSync, error) {
	conn, err := genetlink.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("ipvs sync: dial generic netlink: %w", err)
	}
	fam, err := conn.GetFamily(ipvsGenlName)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ipvs sync: generic netlink family %q (is ip_vs loaded?): %w", ipvsGenlName, err)
	}
	return &KernelSync{conn: conn, family: fam}, nil
}

// Close releases the netlink socket. Running daemons keep running: they
// are kernel threads.
func (k *KernelSync) Close() error { return k.conn.Close() }

func (k *KernelSync) execute(ctx context.Context, cmd uint8, data []byte, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Time{}
	}
	if err := k.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msg := genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: ipvsGenlVersion},
		Data:   data,
	}
	return k.conn.Execute(msg, k.family.ID, netlink.Request|flags)
}

// StartDaemon starts one kernel sync daemon.
func (k *KernelSync) StartDaemon(ctx context.Context, d SyncDaemon) error {
	data, err := encodeStartDaemon(d)
	if err != nil {
		return err
	}
	if _, err := k.execute(ctx, ipvsCmdNewDaemon, data, netlink.Acknowledge); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("start %s sync daemon on %s: %w", d.State, d.Interface, ErrDaemonRunning)
		}
		return fmt.Errorf("start %s sync daemon on %s: %w", d.State, d.Interface, err)
	}
	return nil
}

// StopDaemon stops the daemon of the given state; ErrNoDaemon if none runs.
func (k *KernelSync) StopDaemon(ctx context.Context, state SyncState) error {
	data, err := encodeStopDaemon(state)
	if err != nil {
		return err
	}
	if _, err := k.execute(ctx, ipvsCmdDelDaemon, data, netlink.Acknowledge); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("stop %s sync daemon: %w", state, ErrNoDaemon)
		}
		return fmt.Errorf("stop %s sync daemon: %w", state, err)
	}
	return nil
}

// Daemons lists the running daemons, master first.
func (k *KernelSync) Daemons(ctx context.Context) ([]SyncDaemon, error) {
	msgs, err := k.execute(ctx, ipvsCmdGetDaemon, nil, netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("list sync daemons: %w", err)
	}
	out := make([]SyncDaemon, 0, len(msgs))
	for _, m := range msgs {
		d, err := decodeDaemon(m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
