// Package heldconns is the contract between bench/connsync's client (its
// "client" subcommand, which holds long-lived connections through a VIP)
// and the benchmarks that put directors through events and read it:
// bench/connsync's events mode and bench/ecmp. Both start the client the
// same way, ask it for one Report per event, and exchange the events as
// JSON lines, so the two designs meet the same client on the same day.
package heldconns

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/bench/internal/iplab"
)

// Report is what the client prints as one JSON line when told to report.
type Report struct {
	Total     int     `json:"total"` // connections alive at the previous report (all of them at the first)
	Survivors int     `json:"survivors"`
	Lost      []int   `json:"lost"`      // indexes of dead connections
	Timeouts  int     `json:"timeouts"`  // of those lost at this report, how many went silent (not reset)
	GapMS     float64 `json:"gap_ms"`    // longest time without a stream reply
	Reconnect int     `json:"reconnect"` // times the stream had to reconnect
	Requests  int     `json:"requests"`
	// With -newconn: new connections opened, how many failed, and the
	// longest time between two that succeeded.
	Refilled  int     `json:"refilled,omitempty"` // connections opened after this report to replace the lost
	NewConns  int     `json:"new_conns,omitempty"`
	NewFailed int     `json:"new_failed,omitempty"`
	NewGapMS  float64 `json:"new_gap_ms,omitempty"`
}

// Event is one event of one trial. bench/connsync's events mode prints
// each as EventPrefix and its JSON on a line of its own (-json);
// bench/ecmp reads them back as the rows of its VRRP arm.
type Event struct {
	Trial  int     `json:"trial"`
	Event  string  `json:"event"`
	TookMS float64 `json:"took_ms"` // event to done (evicted, VIP moved)
	Report Report  `json:"report"`
	Err    string  `json:"error,omitempty"`
}

// EventPrefix starts the line of an Event in bench/connsync's output.
const EventPrefix = "EVENT "

// Client is a running client in events mode.
type Client struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// StartEvents runs connsync's client inside namespace ns against target
// (VIP:port) with conns held connections, a 10 ms stream and a new
// connection every 50 ms; the held ones open 20 at a time (a burst of 200
// loses SYNs in the VM) and are replaced after each report, so every event
// starts with all of them. It returns once they are open.
func StartEvents(ns, connsync, target string, conns int) (*Client, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, connsync, "client",
		"-target", target, "-n", fmt.Sprint(conns), "-probe", "0",
		"-stream", "10ms", "-newconn", "50ms", "-settle", "1s", "-burst", "20", "-refill")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("client could not open its connections: %q", lines.Text())
	}
	return &Client{cmd: cmd, lines: lines}, nil
}

// Report asks the client for the report of the time since the last one
// (SIGUSR2) and reads it.
func (c *Client) Report() (Report, error) {
	var r Report
	if err := c.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		return r, err
	}
	if !c.lines.Scan() {
		return r, fmt.Errorf("client gave no report")
	}
	return r, json.Unmarshal(c.lines.Bytes(), &r)
}

// Settle is how long the held connections stay idle after an event is
// done before the client reports: a dead master's last sync records, if
// any, arrive meanwhile.
const Settle = 5 * time.Second

// Measure is the end of one event, the same in every arm: it waits up to
// 60 s for done (a timeout is the Event's Err, not an error), lets the
// connections settle and reads the client's report. TookMS runs from
// start until done held.
func (c *Client) Measure(trial int, event string, start time.Time, done func() bool) (Event, error) {
	e := Event{Trial: trial, Event: event}
	if err := iplab.WaitUntil(60*time.Second, event+" to be done", done); err != nil {
		e.Err = err.Error()
	}
	e.TookMS = float64(time.Since(start)) / float64(time.Millisecond)
	time.Sleep(Settle)
	var err error
	e.Report, err = c.Report()
	return e, err
}

// Kill ends the client.
func (c *Client) Kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}
