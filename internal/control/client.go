package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

// Client talks to a running lvsd over its control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the lvsd whose control socket is socket.
// A request that gets no answer gives up after 30 s, or when its context
// ends.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// Status reads the status document.
func (c *Client) Status(ctx context.Context) (status.Report, error) {
	var st status.Report
	err := c.do(ctx, "GET", "/status", &st)
	return st, err
}

// Drain drains a real server (on) or puts it back (!on).
func (c *Client) Drain(ctx context.Context, service, realserver string, on bool) error {
	verb := "/undrain/"
	if on {
		verb = "/drain/"
	}
	return c.do(ctx, "POST", verb+url.PathEscape(service)+"/"+url.PathEscape(realserver), nil)
}

// Takeover makes this director master of a VRRP instance.
func (c *Client) Takeover(ctx context.Context, instance string) error {
	return c.do(ctx, "POST", "/takeover/"+url.PathEscape(instance), nil)
}

// Giveup hands a VRRP instance to the peer.
func (c *Client) Giveup(ctx context.Context, instance string) error {
	return c.do(ctx, "POST", "/giveup/"+url.PathEscape(instance), nil)
}

// Reset undoes takeover or giveup, ends a resource hold-off and clears a
// failed resource stop of a VRRP instance.
func (c *Client) Reset(ctx context.Context, instance string) error {
	return c.do(ctx, "POST", "/reset/"+url.PathEscape(instance), nil)
}

// Reload makes lvsd re-read its config; the error is the rejection, if any.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, "POST", "/reload", nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://lvsd"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("cannot reach lvsd on %s (is it running? is -socket right?): %w", c.socket, op.Err)
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("lvsd answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}
