package main

import (
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSystemdNotify plays systemd's side of Type=notify: a datagram socket
// in NOTIFY_SOCKET and WATCHDOG_USEC set, as systemd starts the unit.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "300000") // lvsd pings every 100ms

	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// next returns the next message other than a watchdog ping, and how
	// many pings came before it.
	next := func(what string) (string, int) {
		t.Helper()
		pings := 0
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if m == "WATCHDOG=1" {
					pings++
					continue
				}
				return m, pings
			case <-timeout:
				t.Fatalf("no %s from lvsd within 10s", what)
			}
		}
	}

	c := newLabConfig(t)
	l := startLab(t, c)
	if m, _ := next("READY=1"); m != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	// READY comes once the first reconcile pass is done.
	if n := l.ipvs.Ops(); len(n) == 0 {
		t.Error("READY=1 before the first reconcile pass")
	}
	time.Sleep(350 * time.Millisecond)

	if err := l.d.Reload(); err != nil {
		t.Fatal(err)
	}
	m, pings := next("RELOADING=1")
	if m != "RELOADING=1" {
		t.Errorf("on reload lvsd sent %q, want RELOADING=1", m)
	}
	if pings < 2 {
		t.Errorf("%d watchdog pings in 350ms with WATCHDOG_USEC=300000, want 2 or more", pings)
	}
	if m, _ := next("READY=1"); m != "READY=1" {
		t.Errorf("after the reload lvsd sent %q, want READY=1", m)
	}
	// A rejected reload still ends with READY=1: the old config runs on.
	l.write("not toml [")
	if err := l.d.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	got := []string{}
	for range 2 {
		m, _ := next("notification")
		got = append(got, m)
	}
	if !slices.Equal(got, []string{"RELOADING=1", "READY=1"}) {
		t.Errorf("a rejected reload sent %q, want RELOADING=1, READY=1", got)
	}

	// A hung daemon must stop pinging, so systemd restarts it: hold the
	// daemon's lock as a deadlocked component would.
	l.d.mu.Lock()
	drain := func() (pings int) {
		for {
			select {
			case m := <-msgs:
				if m != "WATCHDOG=1" {
					t.Errorf("unexpected %q", m)
				}
				pings++
			default:
				return pings
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // a ping already under way may land
	drain()
	time.Sleep(600 * time.Millisecond)
	hungPings := drain()
	l.d.mu.Unlock()
	if hungPings != 0 {
		t.Errorf("%d watchdog pings while the daemon was hung", hungPings)
	}
	time.Sleep(400 * time.Millisecond)
	if n := drain(); n == 0 {
		t.Error("no watchdog pings after the daemon recovered")
	}

	l.shutdown()
	if m, _ := next("STOPPING=1"); m != "STOPPING=1" {
		t.Errorf("on shutdown lvsd sent %q, want STOPPING=1", m)
	}
}
