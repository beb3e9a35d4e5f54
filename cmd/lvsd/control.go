package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// controller is what the control API needs from the running daemon.
type controller interface {
	Status() StatusReport
	Drain(service, realserver string, on bool) error
	Takeover(instance string) error
	Giveup(instance string) error
	Reset(instance string) error
	Reload() error
}

// controlHandler serves the JSON control API. The same handler is mounted on
// the control socket (mode 0600: every verb) and on the metrics listener
// (read-only: GET /status only), so monitoring needs no socket access but a
// drain does.
func controlHandler(c controller, readOnly bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	if readOnly {
		return mux
	}
	verb := func(f func(r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(r); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
		}
	}
	mux.HandleFunc("POST /drain/{service}/{realserver}", verb(func(r *http.Request) error {
		return c.Drain(r.PathValue("service"), r.PathValue("realserver"), true)
	}))
	mux.HandleFunc("POST /undrain/{service}/{realserver}", verb(func(r *http.Request) error {
		return c.Drain(r.PathValue("service"), r.PathValue("realserver"), false)
	}))
	mux.HandleFunc("POST /takeover/{instance}", verb(func(r *http.Request) error {
		return c.Takeover(r.PathValue("instance"))
	}))
	mux.HandleFunc("POST /giveup/{instance}", verb(func(r *http.Request) error {
		return c.Giveup(r.PathValue("instance"))
	}))
	mux.HandleFunc("POST /reset/{instance}", verb(func(r *http.Request) error {
		return c.Reset(r.PathValue("instance"))
	}))
	mux.HandleFunc("POST /reload", verb(func(r *http.Request) error { return c.Reload() }))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// listenControlSocket removes a stale socket left by a killed lvsd, but
// refuses to steal one that a running lvsd still answers on.
func listenControlSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another lvsd is running", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// controlClient talks to a running lvsd over its control socket.
type controlClient struct {
	socket string
	http   *http.Client
}

func newControlClient(socket string) *controlClient {
	return &controlClient{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

func (c *controlClient) do(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://lvsd"+path, nil)
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
