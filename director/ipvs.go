package director

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
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

// ServiceKey identifies a virtual service in the kernel. Either FWMark is
// set (with Family), or Protocol, Addr and Port.
type ServiceKey struct {
	FWMark   uint32
	Family   uint16 // unix.AF_INET or unix.AF_INET6
	Protocol uint16 // unix.IPPROTO_TCP, _UDP, _SCTP; 0 for fwmark
	Addr     netip.Addr
	Port     uint16
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		fam := "inet"
		if k.Family == unix.AF_INET6 {
			fam = "inet6"
		}
		return fmt.Sprintf("fwmark %d %s", k.FWMark, fam)
	}
	return fmt.Sprintf("%s %s", protoName(k.Protocol), netip.AddrPortFrom(k.Addr, k.Port))
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
