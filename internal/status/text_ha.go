package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeHA lists the VRRP instances' tracked objects and resources, and
// says plainly when a resource's stop failed: lvsd cannot fence it.
func writeHA(w io.Writer, vs []Instance) {
	for _, v := range vs {
		if v.State == "fault" && len(v.Faults) > 0 {
			fmt.Fprintf(w, "  %s is in fault: %s\n", v.Name, strings.Join(v.Faults, "; "))
		}
	}
	var tracks, resources bool
	for _, v := range vs {
		tracks = tracks || len(v.Tracks) > 0
		resources = resources || len(v.Resources) > 0
	}
	if tracks {
		fmt.Fprintln(w, "\nTRACKED (weights move the priority; weight 0: fault while down)")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE / TRACKED\tWEIGHT\tSTATE\tAPPLIED\tLAST RESULT")
		for _, v := range vs {
			for _, t := range v.Tracks {
				fmt.Fprintf(tw, "  %s / %s\t%+d\t%s\t%+d\t%s\n", v.Name, t.Name, t.Weight, t.State, t.Applied, t.LastResult)
			}
		}
		tw.Flush()
	}
	if !resources {
		return
	}
	fmt.Fprintln(w, "\nRESOURCES")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  INSTANCE / RESOURCE\tSTATE\tRESTARTS\tLAST\tTOOK\tRESULT")
	var stopFailed []string
	for _, v := range vs {
		for _, r := range v.Resources {
			last, took, result := "-", "-", ""
			if r.Last != nil {
				last = r.Last.Op + " " + r.Last.At.Format(time.TimeOnly)
				took = r.Last.Duration.Round(time.Millisecond).String()
				result = r.Last.Result
			}
			state := r.State
			if r.Removed {
				state += " (removed)"
			}
			if r.State == "stop_failed" {
				stopFailed = append(stopFailed, v.Name+"/"+r.Name)
			}
			fmt.Fprintf(tw, "  %s / %s\t%s\t%d\t%s\t%s\t%s\n", v.Name, r.Name, state, r.Restarts, last, took, result)
		}
	}
	tw.Flush()
	for _, v := range vs {
		if v.ResourceFailure != "" {
			fmt.Fprintf(w, "  %s: last failure: %s\n", v.Name, v.ResourceFailure)
		}
	}
	for _, r := range stopFailed {
		fmt.Fprintf(w, "  STOP FAILED: %s may still be running; lvsd cannot fence it. Make sure it is stopped, then `lvsd reset INSTANCE`.\n", r)
	}
}
