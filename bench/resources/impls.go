package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// impl is one way to run the service with the VIP.
type impl struct {
	name string
	// detection is the nominal time to notice a dead master.
	detection time.Duration
	// settle is how long the backup gets to join before the kill.
	settle time.Duration
	start  func(l *lab, i int) (*proc, error)
	kill   func(l *lab, i int, p *proc)
	stop   func(l *lab, i int, p *proc)
}

// masterDown is VRRP's Master_Down_Interval for the priority-100 backup.
var masterDown = 3*interval + interval*(256-100)/256

// serviceArgv is the resource script's command line on node nd.
func (l *lab) serviceArgv(nd node, verb string) []string {
	return []string{l.svc, "ha", verb, "-role", "db", "-state", filepath.Join(nd.dir, "state"),
		"-listen", "0.0.0.0:7000", "-replica", nd.peer + ":7001", "-pull", nd.peer + ":7001", "-name", nd.name}
}

func tomlArray(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func lvsdImpl(bin, svc string) impl {
	return impl{name: "lvsd", detection: masterDown, settle: time.Second,
		start: func(l *lab, i int) (*proc, error) {
			nd := l.node(i)
			cfg := fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
metrics_listen = ""

[[vrrp]]
name = "myproxy"
vrid = 51
priority = %d
advert_interval = "100ms"
vips = ["%s/24"]
garp_repeat = 5

  [[vrrp.resource]]
  name = "store"
  start = %s
  stop = %s
  status = %s
  timeout = "10s"
  monitor_interval = "2s"
`, filepath.Join(l.dir, nd.name+".sock"), nd.priority, vip,
				tomlArray(l.serviceArgv(nd, "start")), tomlArray(l.serviceArgv(nd, "stop")), tomlArray(l.serviceArgv(nd, "status")))
			path := filepath.Join(l.dir, nd.name+".toml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			return l.start(nd.name, "lvsd", bin, "run", "-log-level", "debug", "-config", path)
		},
		kill: func(l *lab, i int, p *proc) { p.kill() },
		stop: func(l *lab, i int, p *proc) { p.stop(15 * time.Second) },
	}
}

func keepalivedImpl(bin, svc string) impl {
	return impl{name: "keepalived", detection: masterDown, settle: time.Second,
		start: func(l *lab, i int) (*proc, error) {
			nd := l.node(i)
			cmd := func(verb string) string { return strings.Join(l.serviceArgv(nd, verb), " ") }
			cfg := fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
  vrrp_garp_master_repeat 5
  script_user root
}
vrrp_instance myproxy {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
  virtual_ipaddress {
    %s/24
  }
  notify_master "%s"
  notify_backup "%s"
  notify_fault "%s"
}
`, nd.name, nd.priority, vip, cmd("start"), cmd("stop"), cmd("stop"))
			base := filepath.Join(l.dir, nd.name)
			if err := os.WriteFile(base+".conf", []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			for _, p := range []string{".pid", ".vrrp.pid", ".check.pid"} {
				os.Remove(base + p)
			}
			return l.start(nd.name, "keepalived", bin, "-n", "-l", "-D", "-P", "-f", base+".conf",
				"-p", base+".pid", "-r", base+".vrrp.pid", "-c", base+".check.pid")
		},
		kill: func(l *lab, i int, p *proc) { p.kill() },
		stop: func(l *lab, i int, p *proc) { p.stop(5 * time.Second) },
	}
}

// heartbeat runs in a mount and UTS namespace of its own per node (its
// paths are fixed, and ha.cf names nodes by uname -n): a private /run,
// and this node's /etc/ha.d and /var/lib/heartbeat bound over the host's.
func heartbeatImpl(bin, svc string) impl {
	const deadtime = 400 * time.Millisecond
	return impl{name: "heartbeat", detection: deadtime, settle: 3 * time.Second,
		start: func(l *lab, i int) (*proc, error) {
			nd := l.node(i)
			etc, lib := filepath.Join(nd.dir, "ha.d"), filepath.Join(nd.dir, "lib")
			if _, err := os.Stat(etc); err != nil {
				for _, c := range [][]string{{"cp", "-a", "/etc/ha.d/.", etc + "/"}, {"cp", "-a", "/var/lib/heartbeat/.", lib + "/"}} {
					os.MkdirAll(c[3], 0o755)
					if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
						return nil, fmt.Errorf("%v: %v: %s", c, err, out)
					}
				}
			}
			files := map[string]string{
				"ha.cf": fmt.Sprintf("logfile %s\nkeepalive %dms\nwarntime 300ms\ndeadtime %dms\ninitdead 2\nudpport 694\nucast eth0 %s\nauto_failback on\nnode d1\nnode d2\ncrm off\n",
					filepath.Join(l.dir, nd.name+".heartbeat.log"), interval.Milliseconds(), deadtime.Milliseconds(), nd.peer),
				"authkeys":            "auth 1\n1 crc\n",
				"haresources":         fmt.Sprintf("d1 IPaddr2::%s/24/eth0 statesvc\n", vip),
				"resource.d/statesvc": "#!/bin/sh\nexec " + strings.Join(l.serviceArgv(nd, `"$1"`), " ") + "\n",
			}
			for name, text := range files {
				mode := os.FileMode(0o644)
				switch name {
				case "authkeys":
					mode = 0o600
				case "resource.d/statesvc":
					mode = 0o755
				}
				if err := os.WriteFile(filepath.Join(etc, name), []byte(text), mode); err != nil {
					return nil, err
				}
			}
			script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd
chown -R hacluster:haclient /run/heartbeat
mount --bind %s /etc/ha.d
mount --bind %s /var/lib/heartbeat
hostname %s
exec %s
`, etc, lib, nd.name, bin)
			// heartbeat daemonizes: this returns once it has.
			a := l.in(nd.name, "unshare", "-u", "sh", "-c", script)
			if out, err := exec.Command(a[0], a[1:]...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("starting heartbeat: %v: %s", err, out)
			}
			return nil, nil
		},
		kill: func(l *lab, i int, _ *proc) { l.killAll(l.node(i).name, "heartbeat") },
		stop: func(l *lab, i int, _ *proc) { l.killAll(l.node(i).name, "heartbeat") },
	}
}
