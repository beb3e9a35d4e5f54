// statesvc is the stateful service of the HA tests, in the style of the
// MyProxy pair our users ran under Linux-HA: a key-value store whose
// master replicates every write to its twin before acknowledging it, so
// the twin holds everything a client was told was stored, and whose
// resource script copies the state from the peer before it starts read-
// write. One binary plays every part:
//
//	statesvc replica -listen IP:PORT -state DIR    the twin's copy, running on both nodes all the time (DRBD's part)
//	statesvc serve -listen ADDR -state DIR [-replica PEER:PORT] [-name N]   the read-write store: SET k v, GET k, PING
//	statesvc web -listen ADDR -db ADDR [-name N]   a front that answers PING only while the store does
//	statesvc pull -from PEER:PORT -state DIR       copy the peer's state here
//	statesvc ha start|stop|status -role data|db|web -state DIR [...]   the resource script lvsd runs
//
// The ha verbs follow LSB: start and stop succeed when already done,
// status exits 0 when running and 3 when not. start daemonizes the role
// (its own session, output to DIR/ROLE.log, pid in DIR/ROLE.pid) and
// returns once it answers.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: statesvc replica|serve|web|pull|ha ...")
	}
	log.SetFlags(log.Lmicroseconds)
	var err error
	switch os.Args[1] {
	case "replica":
		err = runReplica(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	case "web":
		err = runWeb(os.Args[2:])
	case "pull":
		err = runPull(os.Args[2:])
	case "ha":
		os.Exit(runHA(os.Args[2:]))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// store is a directory with one file per key, each written with fsync
// and rename, so a killed process leaves whole values.
type store struct {
	dir string
	mu  sync.Mutex
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	return &store{dir: dir}, nil
}

func (s *store) put(k, v string) error {
	if k == "" || strings.ContainsAny(k, "/ \n") {
		return fmt.Errorf("bad key %q", k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := filepath.Join(s.dir, "data", "."+k+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(v); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(tmp, filepath.Join(s.dir, "data", k))
}

func (s *store) get(k string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", k))
	return string(b), err == nil
}

func (s *store) all() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(filepath.Join(s.dir, "data"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if v, ok := s.get(e.Name()); ok {
			out[e.Name()] = v
		}
	}
	return out
}

// serveLines runs handle for each line of each connection on ln.
func serveLines(ln net.Listener, handle func(line string) string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := fmt.Fprintf(c, "%s\n", handle(sc.Text())); err != nil {
					return
				}
			}
		}()
	}
}

// ask sends one line and reads one line back.
func ask(addr, line string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	r, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(r), err
}

func runReplica(args []string) error {
	fs := flag.NewFlagSet("replica", flag.ExitOnError)
	listen := fs.String("listen", "", "address to accept the master's writes on")
	dir := fs.String("state", "", "state directory")
	fs.Parse(args)
	st, err := openStore(*dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("replica on %s", ln.Addr())
	return serveLines(ln, func(line string) string {
		f := strings.SplitN(line, " ", 3)
		switch {
		case len(f) == 3 && f[0] == "PUT":
			if err := st.put(f[1], f[2]); err != nil {
				return "ERR " + err.Error()
			}
			return "OK"
		case f[0] == "DUMP":
			var b strings.Builder
			m := st.all()
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "%s %s\t", k, m[k])
			}
			return "DUMP " + b.String()
		}
		return "ERR unknown"
	})
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "", "address to serve clients on")
	dir := fs.String("state", "", "state directory")
	replica := fs.String("replica", "", "the twin's replica address: every write is copied there before it is acknowledged")
	name := fs.String("name", "", "name PING answers with")
	fs.Parse(args)
	if _, err := os.Stat(filepath.Join(*dir, "rw")); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(*dir, "needs-rw")); err == nil {
			return errors.New("the state is not read-write here (the data resource is not started)")
		}
	}
	st, err := openStore(*dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("serving on %s, replicating to %q", ln.Addr(), *replica)
	var degraded bool
	var repMu sync.Mutex
	return serveLines(ln, func(line string) string {
		f := strings.SplitN(line, " ", 3)
		switch {
		case f[0] == "PING":
			return "PONG " + *name
		case len(f) == 2 && f[0] == "GET":
			if v, ok := st.get(f[1]); ok {
				return "VAL " + v
			}
			return "NONE"
		case len(f) == 3 && f[0] == "SET":
			if err := st.put(f[1], f[2]); err != nil {
				return "ERR " + err.Error()
			}
			if *replica != "" {
				repMu.Lock()
				// Synchronous, like DRBD's protocol C, while the twin is
				// reachable; once it is not, writes go on here alone.
				if !degraded {
					if r, err := ask(*replica, "PUT "+f[1]+" "+f[2], 300*time.Millisecond); err != nil || r != "OK" {
						log.Printf("replica %s lost (%v %q): going on alone", *replica, err, r)
						degraded = true
					}
				}
				repMu.Unlock()
			}
			return "OK"
		}
		return "ERR unknown"
	})
}

func runWeb(args []string) error {
	fs := flag.NewFlagSet("web", flag.ExitOnError)
	listen := fs.String("listen", "", "address to serve on")
	db := fs.String("db", "", "the store it fronts")
	name := fs.String("name", "", "name PING answers with")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("web on %s in front of %s", ln.Addr(), *db)
	return serveLines(ln, func(line string) string {
		if line != "PING" {
			return "ERR unknown"
		}
		if r, err := ask(*db, "PING", time.Second); err != nil || !strings.HasPrefix(r, "PONG") {
			return "DBDOWN"
		}
		return "PONG " + *name
	})
}

func runPull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	from := fs.String("from", "", "the peer's replica address")
	dir := fs.String("state", "", "state directory")
	timeout := fs.Duration("timeout", time.Second, "give up after")
	fs.Parse(args)
	return pull(*from, *dir, *timeout)
}

// pull copies the peer's state over ours: the peer was master last, or
// holds a copy of everything we acknowledged.
func pull(from, dir string, timeout time.Duration) error {
	st, err := openStore(dir)
	if err != nil {
		return err
	}
	r, err := ask(from, "DUMP", timeout)
	if err != nil {
		return err
	}
	body, ok := strings.CutPrefix(r, "DUMP ")
	if !ok && r != "DUMP" {
		return fmt.Errorf("peer answered %q", r)
	}
	n := 0
	for _, kv := range strings.Split(body, "\t") {
		k, v, ok := strings.Cut(kv, " ")
		if !ok {
			continue
		}
		if err := st.put(k, v); err != nil {
			return err
		}
		n++
	}
	log.Printf("pulled %d keys from %s", n, from)
	return nil
}

// runHA is the resource script: start|stop|status of one role.
func runHA(args []string) int {
	if len(args) < 1 {
		log.Print("usage: statesvc ha start|stop|status -role ROLE ...")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("ha", flag.ExitOnError)
	role := fs.String("role", "db", "data, db or web")
	dir := fs.String("state", "", "state directory")
	listen := fs.String("listen", "", "db and web: address to serve on")
	replica := fs.String("replica", "", "db: the twin's replica address")
	db := fs.String("db", "", "web: the store's address")
	name := fs.String("name", "", "name PING answers with")
	pullFrom := fs.String("pull", "", "data and db: copy the peer's state from its replica first")
	fs.Parse(args[1:])
	if *role == "data" {
		return haData(verb, *dir, *pullFrom)
	}
	pidFile := filepath.Join(*dir, *role+".pid")
	ping := *listen
	if h, p, err := net.SplitHostPort(ping); err == nil && (h == "" || h == "0.0.0.0") {
		ping = net.JoinHostPort("127.0.0.1", p)
	}
	switch verb {
	case "start":
		began := time.Now()
		if pid, ok := running(pidFile); ok {
			log.Printf("%s already running (pid %d)", *role, pid)
			return 0
		}
		if *pullFrom != "" {
			if err := pull(*pullFrom, *dir, time.Second); err != nil {
				log.Printf("no state from the peer (%v): starting from ours", err)
			}
		}
		pulled := time.Since(began)
		self, _ := os.Executable()
		var argv []string
		switch *role {
		case "db":
			argv = []string{"serve", "-listen", *listen, "-state", *dir, "-replica", *replica, "-name", *name}
		case "web":
			argv = []string{"web", "-listen", *listen, "-db", *db, "-name", *name}
		default:
			log.Printf("unknown role %q", *role)
			return 2
		}
		out, err := os.OpenFile(filepath.Join(*dir, *role+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Print(err)
			return 1
		}
		cmd := exec.Command(self, argv...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			log.Print(err)
			return 1
		}
		out.Close()
		os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			select {
			case err := <-exited:
				log.Printf("%s exited at start: %v", *role, err)
				os.Remove(pidFile)
				return 1
			default:
			}
			if r, err := ask(ping, "PING", 200*time.Millisecond); err == nil && strings.HasPrefix(r, "PONG") {
				appendLog(*dir, fmt.Sprintf("%s started in %v (state copied in %v)", *role, time.Since(began), pulled))
				return 0
			}
		}
		log.Printf("%s does not answer on %s", *role, ping)
		return 1
	case "stop":
		pid, ok := running(pidFile)
		if !ok {
			os.Remove(pidFile)
			return 0
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if _, ok := running(pidFile); !ok {
				os.Remove(pidFile)
				return 0
			}
		}
		syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
		os.Remove(pidFile)
		return 0
	case "status":
		if _, ok := running(pidFile); !ok {
			return 3
		}
		if r, err := ask(ping, "PING", time.Second); err != nil || !strings.HasPrefix(r, "PONG") {
			log.Printf("no answer on %s: %v %q", ping, err, r)
			return 1
		}
		return 0
	}
	log.Printf("unknown verb %q", verb)
	return 2
}

// appendLog adds a timestamped line to DIR/ha.log.
func appendLog(dir, line string) {
	f, err := os.OpenFile(filepath.Join(dir, "ha.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%s %s\n", time.Now().Format("15:04:05.000000"), line)
		f.Close()
	}
}

// haData is the data resource (a DRBD promote in miniature): start copies
// the peer's state and makes it read-write here; the db refuses to start
// without it.
func haData(verb, dir, pullFrom string) int {
	rw := filepath.Join(dir, "rw")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "needs-rw"), nil, 0o644)
	switch verb {
	case "start":
		if pullFrom != "" {
			if err := pull(pullFrom, dir, time.Second); err != nil {
				log.Printf("no state from the peer (%v): starting from ours", err)
			}
		}
		if err := os.WriteFile(rw, nil, 0o644); err != nil {
			log.Print(err)
			return 1
		}
		return 0
	case "stop":
		os.Remove(rw)
		return 0
	case "status":
		if _, err := os.Stat(rw); err != nil {
			return 3
		}
		return 0
	}
	return 2
}

// running reads a pid file and says whether that process is alive (not a
// zombie).
func running(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, false
	}
	f := strings.Fields(string(stat))
	return pid, len(f) > 2 && f[2] != "Z"
}

func init() {
	// serve and web exit 0 on SIGTERM, as a daemon should.
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		os.Exit(0)
	}()
}
