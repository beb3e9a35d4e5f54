package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
)

// These tests prove the harness itself: namespaces, veths, bridges, the test
// server, and real traffic through the kernel's IPVS programmed with ipvsadm.
// They are also the examples to copy when building a topology.

// TestLabNetns needs no IPVS, nor anything built, so `go test ./...` as root
// runs it on any host: two namespaces, one veth, servers and clients in both
// address families.
func TestLabNetns(t *testing.T) {
	lab.RequireRoot(t)
	a, b := lab.NewNS(t, "a"), lab.NewNS(t, "b")
	a.Veth("eth0", b, "eth0")
	a.Addr("eth0", "10.9.0.1/24")
	b.Addr("eth0", "10.9.0.2/24")
	a.Addr("eth0", "fd00:9::1/64")
	b.Addr("eth0", "fd00:9::2/64")
	b.Addr("lo", "10.9.9.9/32")
	a.Route("10.9.9.9", "via", "10.9.0.2")
	b.Sysctl("net.ipv4.ip_forward", "1")
	if got := b.Run("cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != "1" {
		t.Errorf("ip_forward in %s = %q after Sysctl", b, got)
	}
	if got := a.Run("cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != "0" {
		t.Errorf("ip_forward in %s = %q: Sysctl leaked out of %s", a, got, b)
	}

	ln, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "b")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a.WaitTCP("10.9.0.2:80", 10*time.Second)
	for _, url := range []string{"http://10.9.0.2/", "http://[fd00:9::2]/", "http://10.9.9.9/"} {
		if got := httpGet(t, a, url); got != "b" {
			t.Errorf("GET %s = %q, want %q", url, got, "b")
		}
	}
	// The test process's own namespace must not have the lab's addresses.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), "10.9.") {
			t.Errorf("lab address %s leaked into the test's own namespace", a)
		}
	}

	echo := b.Start("sh", "-c", "echo started; exec sleep 60")
	if err := echo.WaitOutput("started", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if echo.Exited() {
		t.Errorf("Start: process ended early")
	}
	echo.Stop()
	if !echo.Exited() {
		t.Errorf("Stop: process still running")
	}
}

// TestIPVSNAT: client -> director (VIP 10.0.1.100, two legs) -> rs1, rs2
// behind a bridge, whose default route is the director.
func TestIPVSNAT(t *testing.T) {
	lab.RequireIPVS(t)
	testserver := lab.Bin(t, "testserver")
	client, director := lab.NewNS(t, "client"), lab.NewNS(t, "dir")
	rs1, rs2 := lab.NewNS(t, "rs1"), lab.NewNS(t, "rs2")

	client.Veth("eth0", director, "eth0")
	client.Addr("eth0", "10.0.1.2/24")
	client.Route("default", "via", "10.0.1.1")
	director.Addr("eth0", "10.0.1.1/24")
	director.Addr("eth0", "10.0.1.100/32")
	director.Sysctl("net.ipv4.ip_forward", "1")

	director.Veth("rs1", rs1, "eth0")
	director.Veth("rs2", rs2, "eth0")
	director.Bridge("br0", "rs1", "rs2")
	director.Addr("br0", "10.0.2.1/24")
	for i, rs := range []*lab.NS{rs1, rs2} {
		rs.Addr("eth0", fmt.Sprintf("10.0.2.%d/24", 11+i))
		rs.Route("default", "via", "10.0.2.1")
		rs.Start(testserver, "-name", fmt.Sprintf("rs%d", i+1), "-http", ":80")
		director.WaitTCP(fmt.Sprintf("10.0.2.%d:80", 11+i), 10*time.Second)
	}

	director.Run("ipvsadm", "-A", "-t", "10.0.1.100:80", "-s", "rr")
	director.Run("ipvsadm", "-a", "-t", "10.0.1.100:80", "-r", "10.0.2.11:80", "-m")
	director.Run("ipvsadm", "-a", "-t", "10.0.1.100:80", "-r", "10.0.2.12:80", "-m")
	t.Log(director.Run("ipvsadm", "-Ln"))

	assertSpread(t, client, "http://10.0.1.100/", 20, "rs1", "rs2")
}

// TestIPVSDR: one L2 segment (a bridge in its own namespace); the director
// holds the VIP, the real servers hold it on lo and neither answer nor
// announce ARP for it, and reply straight to the client.
func TestIPVSDR(t *testing.T) {
	lab.RequireIPVS(t)
	testserver := lab.Bin(t, "testserver")
	lan := lab.NewNS(t, "lan")
	client, director := lab.NewNS(t, "client"), lab.NewNS(t, "dir")
	rs1, rs2 := lab.NewNS(t, "rs1"), lab.NewNS(t, "rs2")
	hosts := map[string]*lab.NS{"client": client, "dir": director, "rs1": rs1, "rs2": rs2}
	ips := map[string]string{"client": "10.0.3.2", "dir": "10.0.3.1", "rs1": "10.0.3.11", "rs2": "10.0.3.12"}
	var ports []string
	for name, ns := range hosts {
		lan.Veth(name, ns, "eth0")
		ns.Addr("eth0", ips[name]+"/24")
		ports = append(ports, name)
	}
	lan.Bridge("br0", ports...)

	const vip = "10.0.3.100"
	director.Addr("eth0", vip+"/32")
	for i, rs := range []*lab.NS{rs1, rs2} {
		rs.Addr("lo", vip+"/32")
		for _, dev := range []string{"all", "eth0"} {
			rs.Sysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
			rs.Sysctl("net.ipv4.conf."+dev+".arp_announce", "2")
		}
		rs.Start(testserver, "-name", fmt.Sprintf("rs%d", i+1), "-http", ":80")
		director.WaitTCP(fmt.Sprintf("%s:80", ips[fmt.Sprintf("rs%d", i+1)]), 10*time.Second)
	}

	director.Run("ipvsadm", "-A", "-t", vip+":80", "-s", "rr")
	director.Run("ipvsadm", "-a", "-t", vip+":80", "-r", ips["rs1"]+":80", "-g")
	director.Run("ipvsadm", "-a", "-t", vip+":80", "-r", ips["rs2"]+":80", "-g")

	assertSpread(t, client, "http://"+vip+"/", 20, "rs1", "rs2")
	// The client must have learnt the VIP's MAC from the director alone.
	neigh := client.Run("ip", "neigh", "show", vip)
	dirMAC := strings.Fields(director.Run("cat", "/sys/class/net/eth0/address"))[0]
	if !strings.Contains(neigh, dirMAC) {
		t.Errorf("client's ARP entry for the VIP %q does not name the director's MAC %s", neigh, dirMAC)
	}
}

// assertSpread sends n requests, each on a new connection, and checks that
// every one was answered and every named server answered at least once.
func assertSpread(t *testing.T, client *lab.NS, url string, n int, servers ...string) {
	t.Helper()
	counts := map[string]int{}
	for range n {
		counts[httpGet(t, client, url)]++
	}
	t.Logf("%d requests to %s: %v", n, url, counts)
	total := 0
	for _, s := range servers {
		if counts[s] == 0 {
			t.Errorf("%s never answered: %v", s, counts)
		}
		total += counts[s]
	}
	if total != n {
		t.Errorf("%d of %d answers came from %v: %v", total, n, servers, counts)
	}
}

func httpGet(t *testing.T, from *lab.NS, url string) string {
	t.Helper()
	resp, err := from.HTTPClient(5 * time.Second).Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, from, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s from %s: %s %q %v", url, from, resp.Status, body, err)
	}
	return strings.TrimSpace(string(body))
}
