package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/config"
)

// IPVS is the kernel's virtual-server table as the reconciler needs it: one
// dump and a list of operations. Implementations: Kernel (netlink) and Fake.
type IPVS interface {
	// Dump returns every service in the table with its destinations and
	// counters.
	Dump(ctx context.Context) ([]KernelService, error)
	// Apply runs ops in order and returns one error per op (nil = done).
	// It keeps going after a failure: the caller decides what depended on
	// the failed op and skips it by not sending it.
	Apply(ctx context.Context, ops []Op) []error
	Close() error
}

// ServiceKey identifies a virtual service in the kernel's terms: either
// FWMark is set (with Family), or Protocol, Addr and Port. It is
// config.ServiceKey with the numbers netlink sends; kernelKey and Config
// convert between the two, and it prints as config's key does, so a
// service reads the same in config errors, status, plans and logs.
type ServiceKey struct {
	FWMark   uint32
	Family   uint16 // unix.AF_INET or unix.AF_INET6
	Protocol uint16 // unix.IPPROTO_TCP, _UDP, _SCTP; 0 for fwmark
	Addr     netip.Addr
	Port     uint16
}

// String is config.ServiceKey's: "tcp/192.0.2.10:80", "fwmark/10".
func (k ServiceKey) String() string { return k.Config().String() }

// Config is the key as config names it.
func (k ServiceKey) Config() config.ServiceKey {
	fam := "inet"
	if k.Family == unix.AF_INET6 {
		fam = "inet6"
	}
	if k.FWMark != 0 {
		return config.ServiceKey{FWMark: k.FWMark, Family: fam}
	}
	return config.ServiceKey{Family: fam, Protocol: protoName(k.Protocol), VIP: k.Addr, Port: int(k.Port)}
}

func protoName(p uint16) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", p)
}

// kernelKey is the kernel's form of a config key. config has validated
// the key; what the kernel cannot express is still refused here rather
// than sent.
func kernelKey(k config.ServiceKey) (ServiceKey, error) {
	if k.FWMark != 0 {
		key := ServiceKey{FWMark: k.FWMark, Family: unix.AF_INET}
		switch k.Family {
		case "", "inet":
		case "inet6":
			key.Family = unix.AF_INET6
		default:
			return key, fmt.Errorf("family %q: want inet or inet6", k.Family)
		}
		return key, nil
	}
	if !k.VIP.IsValid() {
		return ServiceKey{}, errors.New("no vip (or fwmark)")
	}
	key := ServiceKey{Addr: k.VIP.Unmap()}
	key.Family = familyOf(key.Addr)
	switch k.Protocol {
	case "tcp":
		key.Protocol = unix.IPPROTO_TCP
	case "udp":
		key.Protocol = unix.IPPROTO_UDP
	case "sctp":
		key.Protocol = unix.IPPROTO_SCTP
	default:
		return key, fmt.Errorf("protocol %q: want tcp, udp or sctp", k.Protocol)
	}
	if k.Port < 0 || k.Port > 65535 {
		return key, fmt.Errorf("port %d: want 0..65535", k.Port)
	}
	key.Port = uint16(k.Port)
	return key, nil
}

// Service flags, as in linux/ip_vs.h.
const (
	FlagPersistent = 0x0001
	flagHashed     = 0x0002 // set by the kernel, never by us
	FlagOnePacket  = 0x0004
	FlagSched1     = 0x0008 // sh-fallback, mh-fallback
	FlagSched2     = 0x0010 // sh-port, mh-port
	FlagSched3     = 0x0020
	userFlags      = FlagPersistent | FlagOnePacket | FlagSched1 | FlagSched2 | FlagSched3
)

// Service is a virtual service's settings.
type Service struct {
	Key       ServiceKey
	Scheduler string
	Flags     uint32 // user flags only
	Timeout   uint32 // persistence timeout in seconds
	// Netmask is the persistence granularity as a prefix length (0..32 or
	// 0..128); the kernel layer converts it to the kernel's encoding.
	Netmask int
}

// settingsEqual says whether two services need no update between them.
// Netmask and timeout only matter to persistent services.
func (s Service) settingsEqual(o Service) bool {
	if s.Scheduler != o.Scheduler || s.Flags&userFlags != o.Flags&userFlags {
		return false
	}
	if s.Flags&FlagPersistent != 0 && (s.Timeout != o.Timeout || s.Netmask != o.Netmask) {
		return false
	}
	return true
}

// Forward is a destination's forwarding method.
type Forward uint32

// Forwarding methods, as in linux/ip_vs.h IP_VS_CONN_F_*.
const (
	ForwardNAT    Forward = 0
	ForwardTunnel Forward = 2
	ForwardDR     Forward = 3
)

func (f Forward) String() string {
	switch f {
	case ForwardNAT:
		return "nat"
	case ForwardTunnel:
		return "tun"
	case ForwardDR:
		return "dr"
	}
	return fmt.Sprintf("fwd-%d", uint32(f))
}

// Dest is a real server in a service.
type Dest struct {
	Addr    netip.AddrPort
	Weight  int
	Forward Forward
	Upper   uint32 // upper connection threshold, 0 = none
	Lower   uint32
	// Filled in by Dump only.
	ActiveConns, InactConns int
	Stats                   Stats
}

func (d Dest) settingsEqual(o Dest) bool {
	return d.Weight == o.Weight && d.Forward == o.Forward && d.Upper == o.Upper && d.Lower == o.Lower
}

// Stats are the kernel's cumulative counters.
type Stats struct {
	Conns, PktsIn, PktsOut, BytesIn, BytesOut uint64
}

// KernelService is one service as dumped from the kernel.
type KernelService struct {
	Service
	Stats Stats
	Dests []Dest
}

// OpKind is the kind of one kernel operation.
type OpKind int

// Operation kinds, in the order the reconciler issues them: creations
// first so a service never loses its last destination mid-pass.
const (
	OpNewService OpKind = iota
	OpNewDest
	OpUpdateService
	OpUpdateDest
	OpDelDest
	OpDelService
)

var opNames = [...]string{"new_service", "new_dest", "update_service", "update_dest", "del_dest", "del_service"}

func (k OpKind) String() string { return opNames[k] }

// Op is one kernel operation. Old holds the kernel's previous state for
// updates and deletes, so an Op can be shown as a diff.
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
	OldSvc  Service
	OldDest Dest
	// Name is the config name of the service (and realserver) for messages;
	// empty for entries lvsd does not know by name.
	Name, RealServer string
}

// String renders the op as one line of a diff: "+ service", "~ weight 3 -> 5".
func (o Op) String() string {
	svc := o.Service.Key.String()
	if o.Name != "" {
		svc = fmt.Sprintf("%s (%s)", svc, o.Name)
	}
	switch o.Kind {
	case OpNewService:
		return fmt.Sprintf("+ service %s %s", svc, describeService(o.Service))
	case OpDelService:
		return fmt.Sprintf("- service %s", svc)
	case OpUpdateService:
		return fmt.Sprintf("~ service %s %s -> %s", svc, describeService(o.OldSvc), describeService(o.Service))
	case OpNewDest:
		return fmt.Sprintf("+ dest %s -> %s %s weight %d%s", svc, o.Dest.Addr, o.Dest.Forward, o.Dest.Weight, thresholds(o.Dest))
	case OpDelDest:
		return fmt.Sprintf("- dest %s -> %s", svc, o.Dest.Addr)
	case OpUpdateDest:
		var ch []string
		if o.OldDest.Weight != o.Dest.Weight {
			ch = append(ch, fmt.Sprintf("weight %d -> %d", o.OldDest.Weight, o.Dest.Weight))
		}
		if o.OldDest.Forward != o.Dest.Forward {
			ch = append(ch, fmt.Sprintf("forwarding %s -> %s", o.OldDest.Forward, o.Dest.Forward))
		}
		if o.OldDest.Upper != o.Dest.Upper || o.OldDest.Lower != o.Dest.Lower {
			ch = append(ch, fmt.Sprintf("thresholds %d/%d -> %d/%d", o.OldDest.Lower, o.OldDest.Upper, o.Dest.Lower, o.Dest.Upper))
		}
		return fmt.Sprintf("~ dest %s -> %s %s", svc, o.Dest.Addr, strings.Join(ch, ", "))
	}
	return "? " + svc
}

func describeService(s Service) string {
	out := "scheduler " + s.Scheduler
	if s.Flags&FlagPersistent != 0 {
		out += fmt.Sprintf(" persistent %ds netmask /%d", s.Timeout, s.Netmask)
	}
	if s.Flags&FlagOnePacket != 0 {
		out += " one-packet"
	}
	if f := s.Flags & (FlagSched1 | FlagSched2 | FlagSched3); f != 0 {
		out += fmt.Sprintf(" sched-flags %#x", f)
	}
	return out
}

func thresholds(d Dest) string {
	if d.Upper == 0 && d.Lower == 0 {
		return ""
	}
	return fmt.Sprintf(" thresholds %d/%d", d.Lower, d.Upper)
}
