package daemon

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Real servers run on other hosts, and their answers reach lvsd's sockets
// whatever lvsd is doing. A server inside the test binary does not: when
// the machine is loaded it waits for the same CPU as lvsd, and lvsd's own
// lateness looks like a slow server, which no probe can tell apart. So
// the servers that tests of lvsd's lateness judge run in a child process
// (this test binary, see init), each switched by the test between
// answering 200, answering 500 and hanging until the probe gives up.

// remoteServers are n HTTP servers in a child process.
type remoteServers struct {
	t     *testing.T
	mu    sync.Mutex // one command at a time
	cmds  io.Writer
	acks  *bufio.Scanner
	addrs []string
}

// serversElsewhere starts n servers answering 200 in a child process. The
// child runs at a higher CPU priority where the test may set one (nice
// runs it anyway where it may not): on a loaded machine a child that
// waits its turn for the CPU is as late as lvsd, and its servers time out
// together; a real server's host is not loaded by its director's.
func serversElsewhere(t *testing.T, n int) *remoteServers {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if nice, err := exec.LookPath("nice"); err == nil {
		cmd = exec.Command(nice, "-n", "-10", os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", serversEnv, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &niceWarning{w: os.Stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child exits when its stdin closes
		cmd.Wait()
	})
	r := &remoteServers{t: t, cmds: stdin, acks: bufio.NewScanner(stdout)}
	for len(r.addrs) < n && r.acks.Scan() {
		r.addrs = append(r.addrs, r.acks.Text())
	}
	if len(r.addrs) < n {
		t.Fatalf("child servers: %d addresses (%v)", len(r.addrs), r.acks.Err())
	}
	return r
}

// set switches server i to mode ("ok", "fail" or "hang") and returns once
// the child has.
func (r *remoteServers) set(i int, mode string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := fmt.Fprintf(r.cmds, "%d %s\n", i, mode); err != nil {
		r.t.Fatalf("child servers: %v", err)
	}
	if !r.acks.Scan() || r.acks.Text() != "ok" {
		r.t.Fatalf("child servers: no ack for %d %s (%q, %v)", i, mode, r.acks.Text(), r.acks.Err())
	}
}

// server is server i as a switchable.
func (r *remoteServers) server(i int) *switchable {
	return &switchable{addr: r.addrs[i], set: func(mode string) { r.set(i, mode) }}
}

const serversEnv = "LVSD_TEST_HTTP_SERVERS"

// niceWarning drops nice's complaint that it may not raise the priority.
type niceWarning struct{ w io.Writer }

func (n *niceWarning) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), "nice: ") {
		return len(p), nil
	}
	return n.w.Write(p)
}

// init turns this test binary into serversElsewhere's child: it prints the
// servers' addresses, then switches them as told on stdin, a line "index
// mode" each, acknowledged with "ok", until stdin closes.
func init() {
	n, err := strconv.Atoi(os.Getenv(serversEnv))
	if err != nil || n <= 0 {
		return
	}
	modes := make([]atomic.Value, n)
	for i := range n {
		modes[i].Store("ok")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(l.Addr())
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch modes[i].Load() {
			case "fail":
				http.Error(w, "broken", http.StatusInternalServerError)
			case "hang":
				<-r.Context().Done()
			default:
				w.Write([]byte("ok\n"))
			}
		}))
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		idx, mode, _ := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= n {
			fmt.Fprintf(os.Stderr, "child servers: bad command %q\n", sc.Text())
			os.Exit(1)
		}
		modes[i].Store(mode)
		fmt.Println("ok")
	}
	os.Exit(0)
}
