package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
)

// The HA lab: the VRRP lab's two directors run a stateful service
// (e2e/statesvc) as lvsd resources, in the style of the MyProxy pair:
// each node runs the service's replica all the time (DRBD's part), the
// master runs it read-write, replicating every write to the twin before
// acknowledging it, and its resource script copies the peer's state
// before it starts. Clients reach it on the VIP, port 7000 (the store) or
// 8000 (its web front).

const (
	storePort = "7000"
	webPort   = "8000"
	replPort  = "7001"
)

type haLab struct {
	*vrrpLab
	svc   string
	nodes []*haNode
}

type haNode struct {
	ns   *lab.NS
	name string // d1, d2
	ip   string
	peer string // the other node's address
	dir  string // state directory
	lvsd *lab.Proc
}

// statesvcBinary returns e2e/statesvc built from this tree (treeBinary).
func statesvcBinary(t *testing.T) string { return treeBinary(t, "statesvc", "./e2e/statesvc") }

func newHALab(t *testing.T) *haLab {
	t.Helper()
	l := &haLab{vrrpLab: newVRRPLab(t), svc: statesvcBinary(t)}
	for i, ns := range []*lab.NS{l.d1, l.d2} {
		n := &haNode{ns: ns, name: fmt.Sprintf("d%d", i+1), ip: fmt.Sprintf("10.9.0.%d", i+1),
			peer: fmt.Sprintf("10.9.0.%d", 2-i), dir: filepath.Join(l.dir, fmt.Sprintf("state-d%d", i+1))}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ns.Start(l.svc, "replica", "-listen", n.ip+":"+replPort, "-state", n.dir)
		l.nodes = append(l.nodes, n)
		// What lvsd started outlives a SIGKILLed lvsd, as in production.
		t.Cleanup(func() {
			for _, role := range []string{"db", "web"} {
				if pid, ok := rolePID(n, role); ok {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
	for _, n := range l.nodes {
		n.ns.WaitTCP(n.ip+":"+replPort, 5*time.Second)
	}
	return l
}

// haConfig is one node's lvsd config: instance "ha" with the VIP, at
// priority, with the given resources and extra keys or tables.
func (l *haLab) haConfig(n *haNode, priority int, extra string) string {
	return fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
metrics_listen = ""

[[vrrp]]
name = "ha"
vrid = 51
priority = %d
advert_interval = "%dms"
vips = ["%s/24"]
garp_repeat = 3
%s`, l.socket(n.ns), priority, vrrpInterval().Milliseconds(), vrrpVIP, extra)
}

// dbResource is the store as a resource: its start copies the peer's
// state and starts it read-write, replicating to the peer.
func (l *haLab) dbResource(n *haNode, more string) string {
	argv := func(verb string) string {
		return toml(l.svc, "ha", verb, "-role", "db", "-state", n.dir, "-listen", "0.0.0.0:"+storePort,
			"-replica", n.peer+":"+replPort, "-pull", n.peer+":"+replPort, "-name", n.name)
	}
	return fmt.Sprintf(`
  [[vrrp.resource]]
  name = "db"
  start = %s
  stop = %s
  status = %s
  timeout = "%s"
  monitor_interval = "%s"
%s`, argv("start"), argv("stop"), argv("status"), scaled(5*time.Second), scaled(300*time.Millisecond), more)
}

// groupResources are heartbeat's resource group in miniature: the data
// (promoted read-write after copying the peer's state), the store on it,
// and a web front on the store.
func (l *haLab) groupResources(n *haNode) string {
	data := func(verb string) string {
		return toml(l.svc, "ha", verb, "-role", "data", "-state", n.dir, "-pull", n.peer+":"+replPort)
	}
	web := func(verb string) string {
		return toml(l.svc, "ha", verb, "-role", "web", "-state", n.dir, "-listen", "0.0.0.0:"+webPort,
			"-db", "127.0.0.1:"+storePort, "-name", n.name)
	}
	dbArgv := func(verb string) string {
		return toml(l.svc, "ha", verb, "-role", "db", "-state", n.dir, "-listen", "0.0.0.0:"+storePort,
			"-replica", n.peer+":"+replPort, "-name", n.name)
	}
	return fmt.Sprintf(`
  [[vrrp.resource]]
  name = "data"
  start = %s
  stop = %s
  status = %s

  [[vrrp.resource]]
  name = "db"
  start = %s
  stop = %s
  status = %s
  timeout = "%[7]s"
  monitor_interval = "%[8]s"

  [[vrrp.resource]]
  name = "web"
  start = %[9]s
  stop = %[10]s
  status = %[11]s
  timeout = "%[7]s"
  monitor_interval = "%[8]s"
`, data("start"), data("stop"), data("status"), dbArgv("start"), dbArgv("stop"), dbArgv("status"),
		scaled(5*time.Second), scaled(300*time.Millisecond), web("start"), web("stop"), web("status"))
}

// toml is a TOML array of strings.
func toml(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// start runs lvsd on n with config text.
func (l *haLab) start(n *haNode, config string) *lab.Proc {
	l.t.Helper()
	path := filepath.Join(l.dir, n.name+".toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		l.t.Fatal(err)
	}
	n.lvsd = n.ns.Start(lvsdBinary(l.t), "run", "-log-level", "debug", "-config", path)
	if os.Getenv("LVSD_E2E_VERBOSE") != "" {
		p := n.lvsd
		l.t.Cleanup(func() { l.t.Logf("%s:\n%s", n.name, p.Output()) })
	}
	return n.lvsd
}

// haStatus is n's status document, with the lookup these tests share.
type haStatus struct{ status.Report }

// status asks n's lvsd; the zero value if it does not answer.
func (l *haLab) status(n *haNode) haStatus {
	var st haStatus
	out, err := exec.Command(lvsdBinary(l.t), "status", "-json", "-socket", l.socket(n.ns)).Output()
	if err == nil {
		json.Unmarshal(out, &st)
	}
	return st
}

// instance is the named instance of st, or a zero one.
func (st haStatus) instance(name string) (out struct {
	State, ResourceFailure   string
	Priority, MasterPriority int
	Restarts                 map[string]int
	Resources                map[string]string
}) {
	out.Restarts, out.Resources = map[string]int{}, map[string]string{}
	for _, v := range st.VRRP {
		if v.Name == name {
			out.State, out.ResourceFailure, out.Priority, out.MasterPriority = v.State, v.ResourceFailure, v.Priority, v.MasterPriority
			for _, r := range v.Resources {
				out.Restarts[r.Name], out.Resources[r.Name] = r.Restarts, r.State
			}
		}
	}
	return out
}

// ask sends one line to the VIP from the client and returns the answer.
func (l *haLab) ask(port, line string) (string, error) {
	c, err := l.client.Dial("tcp", vrrpVIP+":"+port, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	r, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(r), err
}

// serves waits until the service on the VIP answers as n.
func (l *haLab) serves(n *haNode, port string, timeout time.Duration) {
	l.t.Helper()
	waitFor(l.t, scaled(timeout), n.name+" serves on the VIP", func() bool {
		r, err := l.ask(port, "PING")
		return err == nil && r == "PONG "+n.name
	})
}

// write stores count keys prefix0..prefixN through the VIP; each must be
// acknowledged.
func (l *haLab) write(prefix string, count int) {
	l.t.Helper()
	for i := range count {
		if r, err := l.ask(storePort, fmt.Sprintf("SET %s%d v%d", prefix, i, i)); err != nil || r != "OK" {
			l.t.Fatalf("SET %s%d: %q %v", prefix, i, r, err)
		}
	}
}

// holds checks that the service on the VIP has every key of write.
func (l *haLab) holds(prefix string, count int) {
	l.t.Helper()
	for i := range count {
		if r, err := l.ask(storePort, fmt.Sprintf("GET %s%d", prefix, i)); err != nil || r != fmt.Sprintf("VAL v%d", i) {
			l.t.Fatalf("GET %s%d after the failover: %q %v", prefix, i, r, err)
		}
	}
}

// rolePID is the pid of n's running role (db, web), if it runs.
func rolePID(n *haNode, role string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(n.dir, role+".pid"))
	if err != nil {
		return 0, false
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, false
	}
	f := strings.Fields(string(stat))
	return pid, len(f) > 2 && f[2] != "Z"
}

// exclusive samples both nodes every 10 ms until stop is called and fails
// the test if the role ever runs on both at once.
func (l *haLab) exclusive(role string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var twice []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_, a := rolePID(l.nodes[0], role)
			_, b := rolePID(l.nodes[1], role)
			if a && b {
				twice = append(twice, time.Now().Format(time.StampMilli))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if len(twice) > 0 {
			l.t.Errorf("%s ran on both nodes at %d sampled moments, first at %s", role, len(twice), twice[0])
		}
	}
}

// cable pulls (false) or plugs (true) n's cable at the switch.
func (l *haLab) cable(n *haNode, on bool) {
	l.t.Helper()
	port := "p" + n.name[1:]
	state := "down"
	if on {
		state = "up"
	}
	l.sw.Run("ip", "link", "set", port, state)
}
