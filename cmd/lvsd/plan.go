package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

func init() {
	register(command{
		name:    "plan",
		summary: "show what lvsd would change in the kernel IPVS table, without changing it",
		run:     runPlan,
	})
}

func runPlan(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plan", "Compares the kernel's IPVS table with the config and prints the operations that\n"+
		"would make them equal, as a diff (+ added, - deleted, ~ changed). Nothing is changed.\n"+
		"On a host without IPVS or without root, it plans against an empty table and says so.", stderr)
	path := fs.String("config", "/etc/lvsd/lvsd.toml", "config file")
	healthy := fs.Bool("healthy", true, "take every real server as healthy (as apply does); false plans a cold start, where servers wait for their first check")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ipvs, note, err := openForPlan()
	if err != nil {
		fmt.Fprintf(stderr, "lvsd plan: %v\n", err)
		return 1
	}
	defer ipvs.Close()
	if note != "" {
		fmt.Fprintf(stdout, "# %s: planning against an empty table\n", note)
	}
	d, err := director.New(cfg, ipvs)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *healthy {
		markAllHealthy(d, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := d.Plan(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd plan: %v\n", err)
		return 1
	}
	for _, op := range res.Ops {
		fmt.Fprintln(stdout, op)
	}
	if len(res.Ops) == 0 {
		fmt.Fprintln(stdout, "no changes: the kernel table matches the config")
		return 0
	}
	fmt.Fprintf(stdout, "%d kernel ops%s\n", len(res.Ops), countByKind(res.Ops))
	return 0
}

// openForPlan opens the kernel table read-only in spirit; where there is
// none to read, it returns an empty in-memory one and the reason.
func openForPlan() (director.IPVS, string, error) {
	if !director.HasIPVS() {
		return director.NewFake(), "kernel has no IP_VS support", nil
	}
	if os.Geteuid() != 0 {
		return director.NewFake(), "not root, cannot read the IPVS table", nil
	}
	k, err := director.OpenKernel()
	if errors.Is(err, director.ErrNoIPVS) {
		return director.NewFake(), err.Error(), nil
	}
	return k, "", err
}

// markAllHealthy takes every real server as healthy, for one-shot use.
func markAllHealthy(d *director.Director, cfg *config.Config) {
	for _, s := range cfg.Services {
		for _, r := range s.RealServers {
			d.SetHealth(s.Name, r.Key(), director.Health{Known: true, Healthy: true, Weight: -1})
		}
	}
}

func countByKind(ops []director.Op) string {
	var n [director.OpDelService + 1]int
	for _, op := range ops {
		n[op.Kind]++
	}
	out := ""
	for k, c := range n {
		if c > 0 {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%d %s", c, director.OpKind(k))
		}
	}
	return " (" + out + ")"
}
