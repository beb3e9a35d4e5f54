package lab

import (
	"context"
	"net"
	"net/http"
	"time"
)

// DialContext opens a connection from inside the namespace. Use a literal
// address: for a name with both IPv4 and IPv6 addresses the dialer races
// them on other goroutines, outside the namespace.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Dial opens a connection from inside the namespace with a timeout.
func (ns *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}

// Listen opens a listener inside the namespace. Serving it needs no
// further care: accepted connections belong to the listener's namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket (e.g. "udp") inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// HTTPClient returns a client whose connections start inside the
// namespace. Keep-alives are off so that every request is a new
// connection, which is what IPVS schedules.
func (ns *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true},
	}
}

// WaitTCP waits until a TCP connection to addr from inside the namespace
// succeeds.
func (ns *NS) WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := ns.Dial("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return ns.errorf("nothing accepts on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
