package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// status is the part of lvsd's status document (GET /status on the control
// socket, what `lvsd status -json` prints) that the demo reads.
type status struct {
	Node     string `json:"node"`
	Services []struct {
		Name        string `json:"name"`
		RealServers []struct {
			Address      string `json:"address"`
			Health       string `json:"health"`
			Reason       string `json:"reason"`
			KernelWeight int    `json:"kernel_weight"`
		} `json:"realservers"`
	} `json:"services"`
	VRRP []struct {
		Name  string   `json:"name"`
		State string   `json:"state"`
		VIPs  []string `json:"vips"`
	} `json:"vrrp"`
}

// realServer finds one real server of one service; ok is false when the
// status does not list it.
func (s *status) realServer(service, address string) (health, reason string, kernelWeight int, ok bool) {
	for _, svc := range s.Services {
		if svc.Name != service {
			continue
		}
		for _, rs := range svc.RealServers {
			if rs.Address == address {
				return rs.Health, rs.Reason, rs.KernelWeight, true
			}
		}
	}
	return "", "", 0, false
}

// vrrpState returns the state of instance, or "" if lvsd has none by that name.
func (s *status) vrrpState(instance string) string {
	for _, v := range s.VRRP {
		if v.Name == instance {
			return v.State
		}
	}
	return ""
}

// controlClient reads a director's status over its control socket.
type controlClient struct{ http *http.Client }

func newControlClient(socket string) *controlClient {
	return &controlClient{http: &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
	}}
}

func (c *controlClient) status() (*status, error) {
	resp, err := c.http.Get("http://lvsd/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /status: %s", resp.Status)
	}
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET /status: %w", err)
	}
	return &st, nil
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
