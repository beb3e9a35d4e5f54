package anycast

import (
	"net/netip"
	"time"
)

// Status is what `lvsd status` shows of active-active: each VIP, announced
// or not and why, and BIRD's BGP sessions. Field names are part of the
// status API: add, never rename.
type Status struct {
	Device     string      `json:"device"`
	VIPs       []VIPStatus `json:"vips"`
	BIRDSocket string      `json:"bird_socket,omitempty"`
	// BIRDError is why BIRD could not be asked (not running, no socket).
	BIRDError string    `json:"bird_error,omitempty"`
	Sessions  []Session `json:"bgp_sessions,omitempty"`
}

// VIPStatus is one announced VIP.
type VIPStatus struct {
	VIP       string    `json:"vip"`
	Services  []string  `json:"services"`
	Announced bool      `json:"announced"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"` // when Announced last changed

	prefix netip.Prefix
}

// Session is one BGP protocol of BIRD.
type Session struct {
	Protocol
	// BGPState is BIRD's session state: Established when routes flow.
	BGPState string `json:"bgp_state"`
	// Exported are the routes BIRD sends this neighbour (the VIPs it
	// announces), read only while the session is established.
	Exported []string `json:"exported,omitempty"`
}
