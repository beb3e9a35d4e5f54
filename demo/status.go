package main

import (
	"context"
	"time"

	"github.com/lvsd/lvsd/internal/control"
	lvsdstatus "github.com/lvsd/lvsd/internal/status"
)

// status is lvsd's status document (GET /status on the control socket,
// what `lvsd status -json` prints), with the lookups the demo makes.
type status struct{ lvsdstatus.Report }

// realServer finds one real server of one service; ok is false when the
// status does not list it.
func (s *status) realServer(service, address string) (health, reason string, kernelWeight int, ok bool) {
	r := s.RealServer(service, address)
	if r == nil {
		return "", "", 0, false
	}
	return r.Health, r.Reason, r.KernelWeight, true
}

// vrrpState returns the state of instance, or "" if lvsd has none by that name.
func (s *status) vrrpState(instance string) string {
	if v := s.Instance(instance); v != nil {
		return v.State
	}
	return ""
}

// controlClient reads a director's status over its control socket.
type controlClient struct{ c *control.Client }

func newControlClient(socket string) *controlClient {
	return &controlClient{c: control.NewClient(socket)}
}

// status reads the status, giving up after 2 s: the demo polls, and a
// director that does not answer is itself worth showing.
func (c *controlClient) status() (*status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.c.Status(ctx)
	if err != nil {
		return nil, err
	}
	return &status{st}, nil
}

// waitStatus polls until cond holds for the status, up to timeout, and
// returns the time it was first seen to hold.
func (c *controlClient) waitStatus(timeout time.Duration, cond func(*status) bool) (time.Time, *status, bool) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.status()
		if err == nil && cond(st) {
			return time.Now(), st, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, st, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
