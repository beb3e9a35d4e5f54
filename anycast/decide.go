package anycast

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsd/lvsd/config"
)

// VIP is one announced address and the services that share it. The VIP
// is one route: it is announced only while all of them can serve.
type VIP struct {
	Prefix   netip.Prefix // the address as a /32 or /128
	Services []string
}

// VIPsOf lists the VIPs cfg announces, in config order.
func VIPsOf(cfg *config.Config) []VIP {
	var out []VIP
	at := map[netip.Addr]int{}
	for _, s := range cfg.Services {
		a := s.VIP.IP.Unmap()
		if !s.Announce || s.FWMark != 0 || !a.IsValid() {
			continue
		}
		i, ok := at[a]
		if !ok {
			i = len(out)
			at[a] = i
			out = append(out, VIP{Prefix: netip.PrefixFrom(a, a.BitLen())})
		}
		out[i].Services = append(out[i].Services, s.Name)
	}
	return out
}

// Readiness is what the director says of one service: whether it can take
// traffic on this director now and, if not, why.
type Readiness struct {
	Ready bool
	Why   string
}

// Inputs is everything one decision looks at.
type Inputs struct {
	Services map[string]Readiness // by service name; absent: not ready
	// VRRP holds the last state reported by each tracked instance
	// ("init", "backup", "master", "fault"); absent: none reported yet.
	VRRP  map[string]string
	Track []string // config's announce.track_vrrp
}

// Decision is whether one VIP is announced, and why (or why not).
type Decision struct {
	VIP      netip.Prefix
	Services []string
	Announce bool
	Reason   string
}

// Decide says, for each VIP, whether this director announces it. A VIP is
// announced while every tracked VRRP instance is backup or master and
// every service on it is ready (quorum, and the kernel holding the pool).
// It is pure: the announcer feeds it a snapshot and applies the result.
func Decide(vips []VIP, in Inputs) []Decision {
	vrrpWhy := trackedFault(in)
	out := make([]Decision, 0, len(vips))
	for _, v := range vips {
		d := Decision{VIP: v.Prefix, Services: v.Services}
		var why []string
		for _, s := range v.Services {
			r, ok := in.Services[s]
			switch {
			case !ok:
				why = append(why, s+": no state from the director")
			case !r.Ready:
				why = append(why, s+": "+r.Why)
			}
		}
		switch {
		case vrrpWhy != "":
			d.Reason = vrrpWhy
		case len(why) > 0:
			d.Reason = strings.Join(why, "; ")
		default:
			d.Announce = true
			d.Reason = "serving: " + strings.Join(v.Services, ", ")
		}
		out = append(out, d)
	}
	return out
}

// trackedFault is why the tracked VRRP instances stop every announcement,
// or "" when they are all backup or master.
func trackedFault(in Inputs) string {
	var why []string
	for _, name := range in.Track {
		switch st, ok := in.VRRP[name]; {
		case !ok:
			why = append(why, fmt.Sprintf("vrrp[%s] has not started", name))
		case st != "backup" && st != "master":
			why = append(why, fmt.Sprintf("vrrp[%s] is %s", name, st))
		}
	}
	return strings.Join(why, "; ")
}
