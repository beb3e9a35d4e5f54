// Package vrrppair is the VRRP lab of the benchmarks: two directors d1
// (10.9.0.1) and d2 (10.9.0.2) and a client cl (10.9.0.100) on a bridge in
// sw, namespaces of internal/lab, running an lvsd pair or a keepalived pair
// with the same settings for VRID 51 and VIP 10.9.0.10. The client captures
// ARP with the kernel's timestamps, so a takeover is timed to the backup's
// first gratuitous ARP for the VIP as the link saw it: "holds the VIP and
// has told the link" (both implementations add the VIP before they
// announce it).
//
// bench/failover times takeovers on a quiet machine with it; bench/stress
// runs the same pairs under load.
package vrrppair

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/internal/lab"
)

// The pair's addresses.
var (
	VIP        = netip.MustParseAddr("10.9.0.10")
	MasterAddr = netip.MustParseAddr("10.9.0.1") // d1's
	BackupAddr = netip.MustParseAddr("10.9.0.2") // d2's
)

// VRID is the pair's virtual router id.
const VRID = 51

// Impl names a VRRP implementation.
type Impl string

// The implementations a pair can run.
const (
	Lvsd       Impl = "lvsd"
	Keepalived Impl = "keepalived"
)

// Options are the settings both implementations get, and each one's own.
type Options struct {
	Interval time.Duration // advert interval
	// Lvsd is the command that runs lvsd; the config path is appended
	// (e.g. "bin/lvsd", "run", "-config").
	Lvsd       []string
	Keepalived string // keepalived binary

	LvsdMetrics  string   // metrics_listen inside each director's namespace; "" = off
	LvsdDirector []string // more lines for lvsd's [director] table
	LvsdVRRP     []string // more lines for lvsd's [[vrrp]] table
	LvsdEnv      []string // more environment for lvsd
	// LvsdExtra, when set, returns more TOML appended to node's lvsd
	// config (services, say) each time it is written.
	LvsdExtra func(node *lab.NS) string

	KeepalivedGlobal []string // more lines for keepalived's global_defs
	// KeepalivedDetail runs keepalived with -D, which logs every
	// gratuitous ARP: under load that logging costs it CPU of its own.
	KeepalivedDetail bool

	// Auth signs and verifies the pair's adverts: lvsd with [vrrp.auth],
	// keepalived with auth_hmac (both HMAC-SHA256 trailers with key
	// AuthKey, enforce, anti_replay time). keepalived needs 2.4.0 or later
	// for it: New refuses an older Keepalived binary, which would ignore
	// the block and run unsigned.
	Auth bool

	// Settle bounds Takeover's wait for the master to hold the VIP alone
	// (10 s when 0): an lvsd with many checks waits for their first
	// verdicts before it preempts.
	Settle time.Duration
}

// Pair is one implementation's lab.
type Pair struct {
	Impl               Impl
	Dir                string // configs and logs
	SW, D1, D2, Client *lab.NS
	o                  Options
	garp               *lab.Capture
}

// New builds the lab for impl; c tears it down. Configs and logs go to dir.
func New(c lab.Cleaner, impl Impl, dir string, o Options) (*Pair, error) {
	if o.Auth && impl == Keepalived {
		if err := keepalivedSigns(o.Keepalived); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Pair{Impl: impl, Dir: dir, o: o}
	var err error
	if p.SW, err = lab.NewNS(c, "sw"); err != nil {
		return nil, err
	}
	if err := p.SW.Bridge("br0"); err != nil {
		return nil, err
	}
	nodes := []struct {
		ns   **lab.NS
		role string
		addr string
	}{{&p.D1, "d1", MasterAddr.String()}, {&p.D2, "d2", BackupAddr.String()}, {&p.Client, "cl", "10.9.0.100"}}
	for i, n := range nodes {
		if *n.ns, err = lab.NewNS(c, n.role); err != nil {
			return nil, err
		}
		if err := (*n.ns).Plug(p.SW, "br0", fmt.Sprintf("p%d", i)); err != nil {
			return nil, err
		}
		if err := (*n.ns).Addr("eth0", n.addr+"/24"); err != nil {
			return nil, err
		}
	}
	if p.garp, err = p.Client.Capture("eth0", unix.ETH_P_ARP, 50*time.Millisecond); err != nil {
		return nil, err
	}
	return p, nil
}

// ConfigPath is where node's config is written.
func (p *Pair) ConfigPath(node *lab.NS) string {
	if p.Impl == Keepalived {
		return filepath.Join(p.Dir, node.Role+".conf")
	}
	return filepath.Join(p.Dir, node.Role+".toml")
}

// WriteConfig writes node's config at priority (lvsd: with LvsdExtra).
func (p *Pair) WriteConfig(node *lab.NS, priority int) error {
	var conf string
	if p.Impl == Keepalived {
		conf = KeepalivedConfig(p.o, priority)
	} else {
		conf = LvsdConfig(p.o, priority, filepath.Join(p.Dir, node.Role+".sock"))
		if p.o.LvsdExtra != nil {
			conf += "\n" + p.o.LvsdExtra(node)
		}
	}
	// Written aside and renamed, so a reload never reads half a file.
	tmp := p.ConfigPath(node) + ".new"
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.ConfigPath(node))
}

// Start writes node's config at priority and starts the implementation
// there, its output appended to DIR/ROLE.log.
func (p *Pair) Start(node *lab.NS, priority int) (*lab.Proc, error) {
	if err := p.WriteConfig(node, priority); err != nil {
		return nil, err
	}
	o := lab.ProcOptions{Log: filepath.Join(p.Dir, node.Role+".log"), Grace: 3 * time.Second}
	if p.Impl == Keepalived {
		base := filepath.Join(p.Dir, node.Role)
		// A killed keepalived leaves pid files that stop the next start.
		for _, s := range []string{".pid", ".vrrp.pid", ".check.pid"} {
			os.Remove(base + s)
		}
		argv := []string{p.o.Keepalived, "-n", "-l", "-P", "-f", p.ConfigPath(node),
			"-p", base + ".pid", "-r", base + ".vrrp.pid", "-c", base + ".check.pid"}
		if p.o.KeepalivedDetail {
			argv = append(argv, "-D")
		}
		return node.Start(o, argv...)
	}
	o.Env = p.o.LvsdEnv
	return node.Start(o, append(append([]string{}, p.o.Lvsd...), p.ConfigPath(node))...)
}

// Holds reports whether node has the VIP on eth0.
func (p *Pair) Holds(node *lab.NS) bool {
	ok, _ := node.HasAddr("eth0", VIP)
	return ok
}

// WaitSettled waits until d1 alone holds the VIP and still does after the
// backup has heard a few adverts (so it runs on the master's interval).
func (p *Pair) WaitSettled(timeout time.Duration) bool {
	settled := func() bool { return p.Holds(p.D1) && !p.Holds(p.D2) }
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if settled() {
			time.Sleep(5 * p.o.Interval)
			if settled() {
				return true
			}
		}
	}
	return false
}

// Takeover waits for the pair to settle, signals the master on d1 (SIGKILL
// reaches its whole process group, as a crash would; another signal only
// the process, as an init system sends it) and returns the time from the
// signal to d2's first gratuitous ARP for the VIP, once d2 holds it.
func (p *Pair) Takeover(master *lab.Proc, sig syscall.Signal, timeout time.Duration) (time.Duration, bool) {
	settle := p.o.Settle
	if settle == 0 {
		settle = 10 * time.Second
	}
	if !p.WaitSettled(settle) {
		return 0, false
	}
	mac, err := p.D2.MAC("eth0")
	if err != nil {
		return 0, false
	}
	p.garp.Drain()
	t0 := time.Now()
	if sig == syscall.SIGKILL {
		master.Signal(sig)
	} else {
		master.Cmd.Process.Signal(sig)
	}
	at, ok := p.waitGARP(mac, t0, timeout)
	if !ok || !p.Holds(p.D2) {
		return 0, false
	}
	return at.Sub(t0), true
}

// waitGARP returns the kernel timestamp of the first ARP frame after since
// whose sender is mac announcing the VIP.
func (p *Pair) waitGARP(mac net.HardwareAddr, since time.Time, timeout time.Duration) (time.Time, bool) {
	want := VIP.As4()
	buf := make([]byte, 2048)
	for end := time.Now().Add(timeout); time.Now().Before(end); {
		f, err := p.garp.Next(buf)
		if err != nil {
			continue
		}
		// Ethernet(14) + ARP: sender MAC at 22, sender IP at 28.
		d := f.Data
		if len(d) < 42 || !bytes.Equal(d[22:28], mac) || !bytes.Equal(d[28:32], want[:]) {
			continue
		}
		if f.At.After(since) {
			return f.At, true
		}
	}
	return time.Time{}, false
}

// TrailerOf waits for an advert from the master on the link and returns
// how many bytes follow its address list: 28 for an HMAC trailer, 0 for
// an unsigned advert. A benchmark of signed pairs checks it once, so a
// peer that ignored its auth settings cannot pass for a signed one.
func (p *Pair) TrailerOf(master netip.Addr, timeout time.Duration) (int, error) {
	c, err := p.Client.Capture("eth0", unix.ETH_P_IP, 50*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	src := master.As4()
	buf := make([]byte, 2048)
	for end := time.Now().Add(timeout); time.Now().Before(end); {
		f, err := c.Next(buf)
		if err != nil {
			continue
		}
		// Ethernet(14), IPv4 (IHL words), then the VRRP PDU: 8 bytes and
		// 4 per address (the count at byte 3).
		d := f.Data
		if len(d) < 34 || d[23] != 112 || !bytes.Equal(d[26:30], src[:]) {
			continue
		}
		ihl := int(d[14]&0x0f) * 4
		total := int(d[16])<<8 | int(d[17])
		if total > len(d)-14 || total < ihl+8 {
			continue
		}
		pdu := d[14+ihl : 14+total]
		return len(pdu) - 8 - 4*int(pdu[3]), nil
	}
	return 0, fmt.Errorf("no advert from %s in %v", master, timeout)
}

// Skew is the backup's Skew_Time at priority (RFC 5798): (256-prio)/256 of
// an interval.
func Skew(interval time.Duration, priority int) time.Duration {
	return time.Duration(int64(256-priority) * int64(interval) / 256)
}

// AuthKey signs the pair's adverts when Options.Auth is set: the 32 bytes
// 0x00..0x1f, in hex.
const AuthKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// keepalivedSigns refuses a keepalived older than 2.4.0, the first with
// auth_hmac.
func keepalivedSigns(bin string) error {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w: %s", bin, err, out)
	}
	var major, minor int
	if i := bytes.Index(out, []byte("Keepalived v")); i < 0 {
		return fmt.Errorf("%s --version: no version in %q", bin, out)
	} else if _, err := fmt.Sscanf(string(out[i:]), "Keepalived v%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("%s --version: %w", bin, err)
	}
	if major < 2 || major == 2 && minor < 4 {
		return fmt.Errorf("%s is keepalived %d.%d: auth_hmac needs 2.4.0 or later", bin, major, minor)
	}
	return nil
}

// LvsdConfig is a director of the pair: VRRP only unless more is appended.
func LvsdConfig(o Options, priority int, socket string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = \"eth0\"\ncontrol_socket = %q\nmetrics_listen = %q\n", socket, o.LvsdMetrics)
	for _, l := range o.LvsdDirector {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, `
[[vrrp]]
name = "vi1"
vrid = %d
priority = %d
advert_interval = %q
vips = ["%s/24"]
garp_repeat = 5
`, VRID, priority, o.Interval.String(), VIP)
	for _, l := range o.LvsdVRRP {
		b.WriteString(l + "\n")
	}
	if o.Auth {
		fmt.Fprintf(&b, "\n  [vrrp.auth]\n  mode = \"enforce\"\n  anti_replay = \"time\"\n  active_key = 1\n"+
			"    [[vrrp.auth.key]]\n    id = 1\n    secret = \"hex:%s\"\n", AuthKey)
	}
	return b.String()
}

// KeepalivedConfig is the same director for keepalived 2.2 (2.4 with
// Auth). It speaks VRRPv2, whose adverts count whole seconds, unless told
// vrrp_version 3.
func KeepalivedConfig(o Options, priority int) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id bench\n  vrrp_version 3\n  vrrp_garp_master_repeat 5\n")
	for _, l := range o.KeepalivedGlobal {
		b.WriteString("  " + l + "\n")
	}
	fmt.Fprintf(&b, `}
vrrp_instance vi1 {
  state BACKUP
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int %g
  virtual_ipaddress {
    %s/24
  }
`, VRID, priority, o.Interval.Seconds(), VIP)
	if o.Auth {
		fmt.Fprintf(&b, "  auth_hmac {\n    key 1 hex:%s\n    active_key 1\n    anti_replay time\n    mode enforce\n  }\n", AuthKey)
	}
	b.WriteString("}\n")
	return b.String()
}
