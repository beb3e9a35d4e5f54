package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/vrrp"
)

// WriteText renders the report as `lvsd status` prints it: the way
// ipvsadm -L does, with health columns added, because that is the table
// our users already read.
func WriteText(w io.Writer, st Report) {
	fmt.Fprintf(w, "lvsd %s on %s, config %s", st.Version, st.Node, st.Config)
	if !st.LastReload.IsZero() {
		ok := "ok"
		if !st.ReloadOK {
			ok = "FAILED: " + st.ReloadErr
		}
		fmt.Fprintf(w, ", last reload %s (%s)", st.LastReload.Format(time.RFC3339), ok)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "checks behind schedule: %d of %d", st.Checks.Behind, st.Checks.Checks)
	if st.Checks.Behind > 0 {
		fmt.Fprintf(w, ", by up to %s (probed less often until lvsd catches up)", st.Checks.BehindBy.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if len(st.VRRP) > 0 {
		fmt.Fprintln(w, "\nVRRP")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE\tVRID\tIFACE\tSTATE\tPRIO\tMASTER-PRIO\tAUTH\tVIPS")
		for _, v := range st.VRRP {
			state := v.State
			if v.PreemptHeld && v.State == "backup" {
				state += " (no preempt until first checks)"
			}
			switch {
			case v.Releasing:
				state += " (stopping resources)"
			case !v.HoldOffUntil.IsZero():
				state += " (hold-off until " + v.HoldOffUntil.Format(time.TimeOnly) + ")"
			}
			if v.SyncGroup != "" {
				state += " [group " + v.SyncGroup + "]"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", v.Name, v.VRID, v.Interface, state, v.Priority, v.MasterPriority, authWord(&v), strings.Join(v.VIPs, ","))
		}
		tw.Flush()
		writeAuth(w, st.VRRP)
		writeHA(w, st.VRRP)
	}
	writeGuard(w, st.EvictionGuard)
	writeAnnounce(w, st.Announce)
	fmt.Fprintln(w, "\nSERVICES")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE / REALSERVER\tHEALTH\tWEIGHT\tKERNEL\tACTIVE\tINACT\tLATENCY\tREASON")
	for _, s := range st.Services {
		flag := ""
		if !s.InKernel {
			flag = " [not in kernel]"
		}
		if s.SorryActive {
			flag += " [SORRY SERVER ACTIVE]"
		}
		fmt.Fprintf(tw, "  %s  %s %s%s\t\t\t\t\t\t\t\n", s.Name, s.Address, s.Scheduler, flag)
		for _, r := range s.RealServers {
			kw := "-"
			if r.KernelWeight >= 0 {
				kw = fmt.Sprint(r.KernelWeight)
			}
			health := r.Health
			if r.Drained {
				health += ",drained"
			}
			if r.HeldByGuard {
				health += ",held"
			}
			lat := "-"
			if r.Latency > 0 {
				lat = r.Latency.Round(10 * time.Microsecond).String()
			}
			fmt.Fprintf(tw, "    -> %s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", r.Address, health, r.Weight, kw, r.ActiveConns, r.InactConns, lat, r.Reason)
		}
	}
	tw.Flush()
}

// authWord is an instance's AUTH column: "-" without [vrrp.auth], else
// the mode and the key that signs.
func authWord(v *Instance) string {
	a := v.Auth
	switch {
	case v.Version == 2 && v.AuthPass:
		return "v2 auth_pass (clear text)"
	case v.Version == 2:
		return "v2, none"
	case a == nil:
		return "-"
	case a.ActiveKey == 0:
		return a.Mode
	}
	return fmt.Sprintf("%s key %d", a.Mode, a.ActiveKey)
}

// writeAuth says, per authenticated instance, what it verified, accepted
// unsigned and dropped: the numbers to read before each rollout step.
func writeAuth(w io.Writer, vrrps []Instance) {
	for _, v := range vrrps {
		a := v.Auth
		if a == nil {
			continue
		}
		var dropped []string
		for _, r := range vrrp.AuthReasons {
			if n := a.Drops[r]; n > 0 {
				dropped = append(dropped, fmt.Sprintf("%s %d", r, n))
			}
		}
		if len(dropped) == 0 {
			dropped = []string{"none"}
		}
		line := fmt.Sprintf("  %s auth: %s, keys %v, verified %d, unsigned accepted %d", v.Name, a.AntiReplay, a.KeyIDs, a.Verified, a.Unsigned)
		if a.LastUnsignedFrom != "" {
			line += " (last from " + a.LastUnsignedFrom + ")"
		}
		fmt.Fprintf(w, "%s; dropped: %s\n", line, strings.Join(dropped, ", "))
	}
}

// guardListed is how many held checks the text status lists; JSON has all.
const guardListed = 20

// writeGuard says what the eviction guard holds, when lvsd is in trouble
// or holds anything.
func writeGuard(w io.Writer, g *Guard) {
	if g == nil || g.Fault == "" && len(g.Held) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEVICTION GUARD")
	if g.Fault != "" {
		fmt.Fprintf(w, "  lvsd is in trouble since %s: %s\n", g.FaultSince.Format(time.RFC3339), g.Fault)
	} else {
		fmt.Fprintln(w, "  lvsd is out of trouble; the checks are judging the held servers again")
	}
	if len(g.Held) == 0 {
		fmt.Fprintln(w, "  holding nothing: every failed check is applied")
		return
	}
	fmt.Fprintf(w, "  holding %d failed checks: their servers stay in the table\n", len(g.Held))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE / REALSERVER\tSINCE\tUNTIL\tREASON\tWHY")
	for i, h := range g.Held {
		if i == guardListed {
			fmt.Fprintf(tw, "  ... and %d more (lvsd status -json lists them all)\t\t\t\t\n", len(g.Held)-i)
			break
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s\t%s\n", h.Service, h.RealServer, h.Since.Format(time.TimeOnly), h.Until.Format(time.TimeOnly), h.Reason, h.Why)
	}
	tw.Flush()
}

// writeAnnounce renders the active-active part of `lvsd status`: each
// announced VIP with its reason, then the BGP sessions as BIRD reports
// them, with the routes BIRD exports on each (what the routers get).
func writeAnnounce(w io.Writer, a *anycast.Status) {
	if a == nil {
		return
	}
	fmt.Fprintf(w, "\nANNOUNCED VIPS (device %s)\n", a.Device)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VIP\tSTATE\tSINCE\tSERVICES\tREASON")
	for _, v := range a.VIPs {
		state := "withdrawn"
		if v.Announced {
			state = "announced"
		}
		since := "-"
		if !v.Since.IsZero() {
			since = v.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", v.VIP, state, since, strings.Join(v.Services, ","), v.Reason)
	}
	tw.Flush()
	switch {
	case a.BIRDSocket == "":
		return
	case a.BIRDError != "" && len(a.Sessions) == 0:
		fmt.Fprintf(w, "\nBGP (BIRD at %s): %s\n", a.BIRDSocket, a.BIRDError)
		return
	}
	fmt.Fprintf(w, "\nBGP (BIRD at %s)\n", a.BIRDSocket)
	if a.BIRDError != "" {
		fmt.Fprintf(w, "  error: %s\n", a.BIRDError)
	}
	if len(a.Sessions) == 0 {
		fmt.Fprintln(w, "  no BGP protocol configured in BIRD")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROTOCOL\tSTATE\tSINCE\tEXPORTED\tINFO")
	for _, s := range a.Sessions {
		exported := "-"
		if len(s.Exported) > 0 {
			exported = strings.Join(s.Exported, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Name, s.State, s.Since, exported, s.Info)
	}
	tw.Flush()
}
