// Package control is lvsd's control API: JSON over HTTP on a unix socket
// (mode 0600, every verb) and, read-only, on the metrics listener. The
// daemon serves it (Handler, Listen); the CLI and the demo talk to it
// (Client). Both ends live here so a path is spelled in one place.
package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

// Controller is what the API steers: the running daemon.
type Controller interface {
	Status(ctx context.Context) status.Report
	Drain(service, realserver string, on bool) error
	Takeover(instance string) error
	Giveup(instance string) error
	Reset(instance string) error
	Reload() error
}

// Handler serves the API. The same handler is mounted on the control
// socket (every verb) and on the metrics listener (readOnly: GET /status
// only), so monitoring needs no socket access but a drain does.
func Handler(c Controller, readOnly bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status(r.Context()))
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

// Listen opens the control socket at path, mode 0600. It removes a stale
// socket left by a killed lvsd, but refuses to steal one that a running
// lvsd still answers on.
func Listen(path string) (net.Listener, error) {
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
