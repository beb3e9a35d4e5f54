package director

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// ErrNoIPVS is returned when the running kernel has no IPVS.
var ErrNoIPVS = errors.New("kernel has no IP_VS support: load the ip_vs module")

// Moby is the IPVS table over moby/ipvs: the first kernel backend, kept
// as a cross-check of Kernel (LVSD_IPVS_BACKEND=moby selects it). Kernel
// replaced it because moby makes one netlink round trip per op and runs
// modprobe on first use. Its quirks are handled here, so the rest of the package speaks
// in plain values:
//   - moby sends the netmask as a native-endian u32 and the kernel reads it
//     as __be32 for IPv4 (the mask's bytes in network order) but as a plain
//     prefix length for IPv6, where it must be 1..128 even without
//     persistence, or the kernel answers EINVAL.
//   - dumped flags carry IP_VS_SVC_F_HASHED, which is the kernel's own;
//     we compare only the flags a user can set.
//   - a destination on a local address is reported with forwarding
//     "local" (1), whatever was asked; diff treats that as equal.
//   - moby's counters are the kernel's 32-bit ones (conns, packets), so
//     they wrap; bytes are 64-bit.
type Moby struct {
	h *ipvs.Handle
}

// MemoryBackend reports whether LVSD_IPVS_BACKEND=memory asks for an
// in-memory IPVS table (the Fake) instead of the kernel's: for benchmarks
// and tests of everything around the table (checks, VRRP, reloads) on hosts
// whose kernel has no IPVS. Nothing is forwarded, the IPVS sysctls are
// left alone and connection sync cannot start.
func MemoryBackend() bool { return os.Getenv("LVSD_IPVS_BACKEND") == "memory" }

// HasIPVS reports whether the running kernel has IPVS loaded.
func HasIPVS() bool {
	_, err := os.Stat("/proc/net/ip_vs")
	return err == nil
}

// OpenMobyAt opens the IPVS table of the network namespace at netnsPath
// ("" = the current one) through moby/ipvs.
func OpenMobyAt(netnsPath string) (*Moby, error) {
	if !HasIPVS() {
		return nil, ErrNoIPVS
	}
	h, err := ipvs.New(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("open ipvs netlink socket: %w", err)
	}
	return &Moby{h: h}, nil
}

// Close implements IPVS.
func (k *Moby) Close() error {
	k.h.Close()
	return nil
}

// Dump implements IPVS.
func (k *Moby) Dump(ctx context.Context) ([]KernelService, error) {
	svcs, err := k.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]KernelService, 0, len(svcs))
	for _, s := range svcs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ks := KernelService{Service: fromMobyService(s), Stats: statsOf(ipvs.SvcStats(s.Stats))}
		dests, err := k.h.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("list destinations of %s: %w", ks.Key, err)
		}
		for _, d := range dests {
			ks.Dests = append(ks.Dests, fromMobyDest(d))
		}
		out = append(out, ks)
	}
	sortKernel(out)
	return out, nil
}

// Apply implements IPVS.
func (k *Moby) Apply(ctx context.Context, ops []Op) []error {
	errs := make([]error, len(ops))
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		s := toMobyService(op.Service)
		switch op.Kind {
		case OpNewService:
			errs[i] = k.h.NewService(s)
		case OpUpdateService:
			errs[i] = k.h.UpdateService(s)
		case OpDelService:
			errs[i] = k.h.DelService(s)
		case OpNewDest:
			errs[i] = k.h.NewDestination(s, toMobyDest(op.Dest))
		case OpUpdateDest:
			errs[i] = k.h.UpdateDestination(s, toMobyDest(op.Dest))
		case OpDelDest:
			errs[i] = k.h.DelDestination(s, toMobyDest(op.Dest))
		}
	}
	return errs
}

func toMobyService(s Service) *ipvs.Service {
	m := &ipvs.Service{
		AddressFamily: s.Key.Family,
		FWMark:        s.Key.FWMark,
		Protocol:      s.Key.Protocol,
		Port:          s.Key.Port,
		SchedName:     s.Scheduler,
		Flags:         s.Flags & userFlags,
		Timeout:       s.Timeout,
		Netmask:       netmaskToKernel(s.Key.Family, s.Netmask),
	}
	if s.Key.FWMark == 0 {
		m.Address = net.IP(s.Key.Addr.AsSlice())
	}
	return m
}

func fromMobyService(m *ipvs.Service) Service {
	s := Service{
		Key:       ServiceKey{FWMark: m.FWMark, Family: m.AddressFamily, Protocol: m.Protocol, Port: m.Port},
		Scheduler: m.SchedName,
		Flags:     m.Flags & userFlags,
		Timeout:   m.Timeout,
		Netmask:   netmaskFromKernel(m.AddressFamily, m.Netmask),
	}
	if m.FWMark != 0 {
		s.Key.Protocol, s.Key.Port = 0, 0
	} else if a, ok := netip.AddrFromSlice(m.Address); ok {
		s.Key.Addr = a.Unmap()
		if m.AddressFamily == unix.AF_INET6 {
			s.Key.Addr = a
		}
	}
	return s
}

// netmaskToKernel encodes a prefix length the way the kernel reads
// IPVS_SVC_ATTR_NETMASK: IPv4 as the mask's bytes (__be32), IPv6 as the
// length itself. moby writes the u32 in native order, so for IPv4 we hand
// it the native reading of the network-order bytes.
func netmaskToKernel(fam uint16, bits int) uint32 {
	if fam == unix.AF_INET6 {
		return uint32(bits)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ^uint32(0)<<(32-bits))
	return binary.NativeEndian.Uint32(b[:])
}

func netmaskFromKernel(fam uint16, v uint32) int {
	if fam == unix.AF_INET6 {
		return int(v)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m := binary.BigEndian.Uint32(b[:])
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	return n
}

func toMobyDest(d Dest) *ipvs.Destination {
	return &ipvs.Destination{
		Address:         net.IP(d.Addr.Addr().AsSlice()),
		Port:            d.Addr.Port(),
		Weight:          d.Weight,
		ConnectionFlags: uint32(d.Forward),
		AddressFamily:   familyOf(d.Addr.Addr()),
		UpperThreshold:  d.Upper,
		LowerThreshold:  d.Lower,
	}
}

func fromMobyDest(m *ipvs.Destination) Dest {
	a, _ := netip.AddrFromSlice(m.Address)
	if m.AddressFamily == unix.AF_INET {
		a = a.Unmap()
	}
	return Dest{
		Addr:        netip.AddrPortFrom(a, m.Port),
		Weight:      m.Weight,
		Forward:     Forward(m.ConnectionFlags & ipvs.ConnectionFlagFwdMask),
		Upper:       m.UpperThreshold,
		Lower:       m.LowerThreshold,
		ActiveConns: m.ActiveConnections,
		InactConns:  m.InactiveConnections,
		Stats:       statsOf(ipvs.SvcStats(m.Stats)),
	}
}

func statsOf(s ipvs.SvcStats) Stats {
	return Stats{Conns: uint64(s.Connections), PktsIn: uint64(s.PacketsIn), PktsOut: uint64(s.PacketsOut), BytesIn: s.BytesIn, BytesOut: s.BytesOut}
}
