package main

import (
	"encoding/json"
	"sync"
	"time"
)

// event is one thing a director said in its JSON log that the demo follows:
// a VRRP state change or a real server's health changing. Time is lvsd's own
// timestamp, so measurements do not include the demo's reaction time.
type event struct {
	Time     time.Time
	Director string
	// VRRP state change: Instance, From, To, Reason.
	Instance, From, To string
	// Health change: Service, RealServer, Healthy, Reason.
	Service, RealServer string
	Healthy             bool
	Reason              string
}

func (e event) isVRRP() bool   { return e.Instance != "" && e.To != "" }
func (e event) isHealth() bool { return e.Service != "" && e.RealServer != "" }

// logLine is the part of an lvsd JSON log line the demo reads. The demo keys
// on attributes (instance/from/to, service/realserver/healthy), not on the
// message text, so rewording a log message does not break it.
type logLine struct {
	Time       time.Time `json:"time"`
	Instance   string    `json:"instance"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Service    string    `json:"service"`
	RealServer string    `json:"realserver"`
	Healthy    *bool     `json:"healthy"`
	Reason     string    `json:"reason"`
}

func parseEvent(director, line string) (event, bool) {
	var l logLine
	if json.Unmarshal([]byte(line), &l) != nil {
		return event{}, false
	}
	e := event{Time: l.Time, Director: director, Reason: l.Reason}
	switch {
	case l.Instance != "" && l.From != "" && l.To != "":
		e.Instance, e.From, e.To = l.Instance, l.From, l.To
	case l.Service != "" && l.RealServer != "" && l.Healthy != nil:
		e.Service, e.RealServer, e.Healthy = l.Service, l.RealServer, *l.Healthy
	default:
		return event{}, false
	}
	return e, true
}

// journal keeps every event of both directors in arrival order.
type journal struct {
	mu     sync.Mutex
	events []event
	health map[[3]string]bool // director, service, realserver -> last verdict
	onNew  func(event)
}

// add records e. A health verdict is recorded only when it differs from
// the last one of that director: one that repeats it is no change.
func (j *journal) add(e event) {
	j.mu.Lock()
	if e.isHealth() {
		k := [3]string{e.Director, e.Service, e.RealServer}
		if last, ok := j.health[k]; ok && last == e.Healthy {
			j.mu.Unlock()
			return
		}
		if j.health == nil {
			j.health = map[[3]string]bool{}
		}
		j.health[k] = e.Healthy
	}
	j.events = append(j.events, e)
	j.mu.Unlock()
	if j.onNew != nil {
		j.onNew(e)
	}
}

// find returns the first event after since that match accepts.
func (j *journal) find(since time.Time, match func(event) bool) (event, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.events {
		if !e.Time.Before(since) && match(e) {
			return e, true
		}
	}
	return event{}, false
}

// wait polls for an event after since that match accepts, up to timeout.
func (j *journal) wait(since time.Time, timeout time.Duration, match func(event) bool) (event, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if e, ok := j.find(since, match); ok {
			return e, true
		}
		if time.Now().After(deadline) {
			return event{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// vrrpTo matches director's instance entering state.
func vrrpTo(director, state string) func(event) bool {
	return func(e event) bool { return e.isVRRP() && e.Director == director && e.To == state }
}

// healthOf matches director's verdict on realserver.
func healthOf(director, realserver string, healthy bool) func(event) bool {
	return func(e event) bool {
		return e.isHealth() && e.Director == director && e.RealServer == realserver && e.Healthy == healthy
	}
}

// forget drops the last verdicts of director, which has restarted and
// judges every server afresh.
func (j *journal) forget(director string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k := range j.health {
		if k[0] == director {
			delete(j.health, k)
		}
	}
}
