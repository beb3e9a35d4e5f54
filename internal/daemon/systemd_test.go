package daemon

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSystemdNotify plays systemd's side of Type=notify: a datagram socket
// in NOTIFY_SOCKET and WATCHDOG_USEC set, as systemd starts the unit.
// lvsd says READY once it runs, RELOADING and READY around every reload
// (also a rejected one), STOPPING when it stops, and pings the watchdog
// meanwhile (how often, and that a hung daemon stops: see
// TestWatchdogPingsOnlyWhileTheDaemonAnswers).
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
	pings := 0
	for pings < 2 {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected %q before any reload", m)
			}
			pings++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d watchdog pings within 10 s with WATCHDOG_USEC=300000", pings)
		}
	}

	if err := l.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if m, _ := next("RELOADING=1"); m != "RELOADING=1" {
		t.Errorf("on reload lvsd sent %q, want RELOADING=1", m)
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

	l.shutdown()
	if m, _ := next("STOPPING=1"); m != "STOPPING=1" {
		t.Errorf("on shutdown lvsd sent %q, want STOPPING=1", m)
	}
}

// TestWatchdogPingsOnlyWhileTheDaemonAnswers runs the watchdog's loop on a
// fake clock: a ping every period while the status snapshot answers, none
// while it hangs (a deadlocked part), and pings again once it answers.
func TestWatchdogPingsOnlyWhileTheDaemonAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var hang chan struct{} // non-nil: the snapshot blocks until it is closed
		snapshot := func() {
			mu.Lock()
			h := hang
			mu.Unlock()
			if h != nil {
				<-h
			}
		}
		var pings int
		ping := func() {
			mu.Lock()
			pings++
			mu.Unlock()
		}
		count := func() int {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			n := pings
			pings = 0
			return n
		}
		var logs syncBuffer
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			pingWhileAnswering(ctx, 100*time.Millisecond, snapshot, ping, slog.New(slog.NewTextHandler(&logs, nil)))
			close(done)
		}()

		time.Sleep(350 * time.Millisecond)
		if n := count(); n != 3 {
			t.Errorf("%d pings in 350 ms at one per 100 ms, want 3", n)
		}

		mu.Lock()
		hang = make(chan struct{})
		release := hang
		mu.Unlock()
		time.Sleep(time.Second)
		if n := count(); n != 0 {
			t.Errorf("%d pings while the snapshot hung, want none", n)
		}
		if !strings.Contains(logs.String(), "no status snapshot within a third of WatchdogSec") {
			t.Errorf("no error logged while hung:\n%s", logs.String())
		}

		// The snapshot under way answers: a ping at once, then one a period.
		mu.Lock()
		hang = nil
		mu.Unlock()
		close(release)
		if n := count(); n != 1 {
			t.Errorf("%d pings as the hung snapshot returned, want 1", n)
		}
		time.Sleep(time.Second)
		if n := count(); n < 9 || n > 10 {
			t.Errorf("%d pings in the second after recovering, want 9 or 10", n)
		}
		cancel()
		<-done
	})
}
