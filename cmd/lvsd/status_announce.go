package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/config"
)

// printAnnounce renders the active-active part of `lvsd status`: each
// announced VIP with its reason, then the BGP sessions as BIRD reports
// them, with the routes BIRD exports on each (what the routers get).
func printAnnounce(w io.Writer, a *anycast.Status) {
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

// printAnnounceSummary is the active-active line of `lvsd check`.
func printAnnounceSummary(w io.Writer, cfg *config.Config) {
	vips := anycast.VIPsOf(cfg)
	if len(vips) == 0 {
		return
	}
	var addrs []string
	for _, v := range vips {
		addrs = append(addrs, v.Prefix.Addr().String())
	}
	a := cfg.Announce
	bird := "no BGP status"
	if a.BIRDSocket != "" {
		bird = "BGP status from BIRD at " + a.BIRDSocket
	}
	fmt.Fprintf(w, "announce %s on device %s while their services have quorum, %s\n", strings.Join(addrs, " "), a.Device, bird)
	if len(a.TrackVRRP) > 0 {
		fmt.Fprintf(w, "  withdrawn while any of these vrrp instances is in fault: %s\n", strings.Join(a.TrackVRRP, ", "))
	}
}
