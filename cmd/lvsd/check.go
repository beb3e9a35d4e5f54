package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lvsd/lvsd/config"
)

const defaultConfig = "/etc/lvsd/lvsd.toml"

func init() {
	register(command{name: "check", summary: "validate a config file and summarise it; exit 1 listing every error", run: runCheck})
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "Validate a config file. On success print what it configures and exit 0;\n"+
		"otherwise print every error as FILE:LINE: key.path: message and exit 1.", stderr)
	path := fs.String("config", defaultConfig, "config file to check")
	quiet := fs.Bool("q", false, "print nothing on success")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lvsd check: unexpected argument %q (use -config FILE)\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var es config.Errors
		if errors.As(err, &es) && len(es) > 1 {
			fmt.Fprintf(stderr, "%d errors\n", len(es))
		}
		return 1
	}
	// Warnings go to stderr even with -q: the config is valid, but an
	// operator should see them wherever lvsd check runs (ExecStartPre too).
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w)
	}
	if !*quiet {
		printSummary(stdout, cfg)
	}
	return 0
}

// printSummary shows what a config will do in the words of ipvsadm and
// keepalived users, so a reviewer can confirm intent, not only syntax.
func printSummary(w io.Writer, cfg *config.Config) {
	servers, probes := 0, 0
	for _, s := range cfg.Services {
		servers += len(s.RealServers)
		for _, r := range s.RealServers {
			probes += len(r.Checks)
		}
	}
	fmt.Fprintf(w, "%s: OK\n", cfg.Path)
	fmt.Fprintf(w, "%s, %s, %s, %s\n\n", plural(len(cfg.Services), "service"), plural(servers, "real server"),
		plural(probes, "health probe"), plural(len(cfg.VRRP), "vrrp instance"))

	d := cfg.Director
	fmt.Fprintf(w, "director %s: interface %s, reconcile every %s, metrics %s, control socket %s, on exit %s\n",
		d.Name, orNone(d.Interface), d.ReconcileInterval.Duration, orNone(d.MetricsListen), orNone(d.ControlSocket), d.OnExit)
	fmt.Fprintf(w, "  eviction guard: %s\n", guardText(d.EvictionGuard))

	printAnnounceSummary(w, cfg)

	for _, v := range cfg.VRRP {
		fmt.Fprintf(w, "\nvrrp %s: vrid %d on %s, priority %d, advert %s, %s, vips %s, %s\n",
			v.Name, v.VRID, v.Interface, v.Priority, v.AdvertInterval.Duration, preemptText(&v),
			joinStrings(v.VIPs), peersText(&v))
		if len(v.TrackServices) > 0 {
			fmt.Fprintf(w, "  gives up when no real server is healthy in: %s\n", strings.Join(v.TrackServices, ", "))
		}
		if len(v.Notify) > 0 {
			fmt.Fprintf(w, "  notify: %s\n", strings.Join(v.Notify, " "))
		}
		if s := v.Sync; s != nil {
			fmt.Fprintf(w, "  connection sync: id %d on %s, group %s port %d ttl %d\n", s.SyncID, s.Interface, s.Group, s.Port, s.TTL)
		}
		if a := v.Auth; a != nil {
			fmt.Fprintf(w, "  %s\n", authText(a))
		}
		if v.Version == 2 {
			fmt.Fprintf(w, "  %s\n", v2Text(&v))
		}
	}

	for _, s := range cfg.Services {
		fmt.Fprintf(w, "\nservice %s: %s, %s, %s\n", s.Name, s.Key(), serviceFlags(s), failureText(s))
		for _, c := range s.Checks {
			fmt.Fprintf(w, "  check %s\n", describeCheck(c))
		}
		for _, r := range s.RealServers {
			fmt.Fprintf(w, "  realserver %s weight %d %s%s\n", r.Key(), r.Weight, r.Forwarding, thresholdText(r))
			if ownChecks(s, r) {
				for _, c := range r.Checks {
					fmt.Fprintf(w, "    check %s\n", describeCheck(c))
				}
			}
		}
		if len(s.RealServers) == 0 {
			fmt.Fprintln(w, "  (no real servers)")
		}
	}
}

func serviceFlags(s *config.Service) string {
	parts := []string{"scheduler " + s.Scheduler}
	if len(s.SchedFlags) > 0 {
		parts[0] += " (" + strings.Join(s.SchedFlags, ",") + ")"
	}
	parts = append(parts, "forwarding "+s.Forwarding)
	if s.Persistence.Duration > 0 {
		parts = append(parts, fmt.Sprintf("persistent %s /%d", s.Persistence.Duration, s.PersistencePrefixLen()))
	}
	if s.OnePacket {
		parts = append(parts, "one-packet")
	}
	if s.Announce {
		parts = append(parts, "vip announced over BGP (active-active)")
	}
	return strings.Join(parts, ", ")
}

func failureText(s *config.Service) string {
	t := "failed servers are "
	if s.Announce {
		t += "kept at weight 0 (in place, so every director hashes alike)"
	} else if s.OnFailure == "drain" {
		t += "drained to weight 0"
	} else {
		t += "removed"
	}
	if s.AlphaOn() {
		t += ", servers start down until checked"
	}
	if s.SorryServer.IsValid() {
		t += fmt.Sprintf(", sorry server %s below %d healthy", s.SorryServer, s.Quorum)
	}
	return t
}

func thresholdText(r *config.RealServer) string {
	var parts []string
	if r.UpperThreshold > 0 || r.LowerThreshold > 0 {
		parts = append(parts, fmt.Sprintf("connections %d..%d", r.LowerThreshold, r.UpperThreshold))
	}
	if r.Warmup.Duration > 0 {
		parts = append(parts, "warm-up "+r.Warmup.Duration.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

// ownChecks reports whether r has checks of its own rather than copies of
// the service's; copies keep the line of the service check they came from.
func ownChecks(s *config.Service, r *config.RealServer) bool {
	if len(r.Checks) == 0 {
		return false
	}
	return len(s.Checks) == 0 || r.Checks[0].Line != s.Checks[0].Line
}

// describeCheck is one line per check: the common keys, then what its
// type says one probe does.
func describeCheck(c *config.Check) string {
	port := ""
	if c.Port != 0 {
		port = fmt.Sprintf(" port %d", c.Port)
	}
	return fmt.Sprintf("%s%s every %s (timeout %s, up after %d, down after %d): %s",
		c.Type, port, c.Interval.Duration, c.Timeout.Duration, c.Rise, c.Fall, c.Settings.Describe())
}

func preemptText(v *config.VRRP) string {
	if !v.PreemptOn() {
		return "no preempt"
	}
	if v.PreemptDelay.Duration > 0 {
		return "preempt after " + v.PreemptDelay.Duration.String()
	}
	return "preempt"
}

func peersText(v *config.VRRP) string {
	if len(v.UnicastPeers) == 0 {
		return "multicast"
	}
	s := "unicast to " + joinStrings(v.UnicastPeers)
	if v.UnicastTTL != 255 || v.MinTTL != 0 {
		s += fmt.Sprintf(" (ttl %d, min ttl %d)", v.UnicastTTL, v.MinTTL)
	}
	return s
}

// authText describes [vrrp.auth] by key ids; the keys are never shown.
func authText(a *config.VRRPAuth) string {
	ids := make([]string, len(a.Keys))
	for i, k := range a.Keys {
		ids[i] = strconv.Itoa(k.ID)
	}
	signs := "signs with key " + strconv.Itoa(a.ActiveKey)
	if !a.Signs() {
		signs = "signs nothing"
	}
	replay := "anti_replay monotonic"
	if a.AntiReplay == config.AntiReplayTime {
		replay = "anti_replay time within " + a.TimeWindow.Duration.String()
	}
	return fmt.Sprintf("auth %s: HMAC-SHA256, %s, %s, keys %s", a.Mode, signs, replay, strings.Join(ids, " "))
}

// v2Text describes a VRRPv2 instance; the password is never shown.
func v2Text(v *config.VRRP) string {
	if v.AuthPass != "" {
		return "VRRPv2 (RFC 3768), auth_pass set: a clear-text password, for pairing with keepalived only"
	}
	return "VRRPv2 (RFC 3768), no authentication"
}

func joinStrings[T fmt.Stringer](items []T) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.String()
	}
	return strings.Join(s, " ")
}

func plural(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "y"):
		return fmt.Sprintf("%d %sies", n, what[:len(what)-1])
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// guardText says when the eviction guard holds failed checks.
func guardText(g config.EvictionGuard) string {
	if !g.On() {
		return "off (every failed check is applied at once)"
	}
	var short []string
	if g.FDLimit > 0 {
		short = append(short, fmt.Sprintf("%d%% of its file descriptors", g.FDLimit))
	}
	if g.MemoryLimit > 0 {
		short = append(short, fmt.Sprintf("%d%% of its memory", g.MemoryLimit))
	}
	if g.ChecksBehind.Duration > 0 {
		short = append(short, fmt.Sprintf("checks %s late", g.ChecksBehind.Duration))
	}
	short = append(short, "a probe without local resources")
	return fmt.Sprintf("holds silent failures of more than %d%% of a pool or of all servers within %s, for at most %s, while lvsd is short (%s)",
		g.Threshold, g.Window.Duration, g.MaxHold.Duration, strings.Join(short, ", "))
}
