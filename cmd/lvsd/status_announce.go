package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/config"
)

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
