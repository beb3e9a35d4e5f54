package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/control"
	"github.com/lvsd/lvsd/internal/web"
)

// endpoint is one HTTP listener the daemon serves: the control socket or
// the metrics listener. A reload that moves it opens the new address in
// Prepare, so an address in use refuses the reload, and closes the old one
// at commit; requests under way on the old one (the `lvsd reload` that
// moved it) still get their answer.
type endpoint struct {
	name    string // as in errors: "control socket", "metrics_listen"
	addrOf  func(*config.Config) string
	listen  func(addr string) (net.Listener, error)
	handler http.Handler
	log     *slog.Logger

	mu   sync.Mutex
	addr string
	l    net.Listener
	srv  *http.Server
}

// newControlSocket serves every verb of the control API on
// director.control_socket (mode 0600).
func newControlSocket(d *Daemon, log *slog.Logger) *endpoint {
	return &endpoint{
		name: "control socket", log: log,
		addrOf:  func(c *config.Config) string { return c.Director.ControlSocket },
		listen:  control.Listen,
		handler: control.Handler(d, false),
	}
}

// newMetricsListener serves /metrics, read-only /status, and the status
// page (internal/web) on director.metrics_listen, so monitoring needs no
// socket access. The page's actions are off unless [director.web] turns
// them on, as the config stands at each request.
func newMetricsListener(d *Daemon, log *slog.Logger) *endpoint {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.Handle("/status", control.Handler(d, true))
	mux.Handle("/", web.Handler(d, func() config.Web { return d.config().Director.Web }, log))
	return &endpoint{
		name: "metrics_listen", log: log,
		addrOf: func(c *config.Config) string { return c.Director.MetricsListen },
		listen: func(addr string) (net.Listener, error) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("metrics_listen: %w", err)
			}
			return l, nil
		},
		handler: mux,
	}
}

// open listens on what cfg asks for, at start, unless a reload that came
// first (a SIGHUP just after start) already does.
func (e *endpoint) open(cfg *config.Config) error {
	addr := e.addrOf(cfg)
	e.mu.Lock()
	serving := e.srv != nil
	e.mu.Unlock()
	if addr == "" || serving {
		return nil
	}
	l, err := e.listen(addr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr, e.l, e.srv = addr, l, e.serve(l)
	return nil
}

func (e *endpoint) serve(l net.Listener) *http.Server {
	srv := &http.Server{Handler: e.handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv
}

func (e *endpoint) Prepare(c *change) (func(), error) {
	addr := e.addrOf(c.next)
	e.mu.Lock()
	same := addr == e.addr
	e.mu.Unlock()
	if same {
		return nil, nil
	}
	var l net.Listener
	if addr != "" {
		var err error
		if l, err = e.listen(addr); err != nil {
			return nil, err
		}
		c.onAbort(func() { l.Close() })
	}
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		oldL, old, oldAddr := e.l, e.srv, e.addr
		e.addr, e.l, e.srv = addr, l, nil
		if l != nil {
			e.srv = e.serve(l)
		}
		e.log.Info("listening elsewhere", "listener", e.name, "was", oldAddr, "now", addr)
		if old != nil {
			// The old address stops accepting now; requests under way
			// finish in the background.
			oldL.Close()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = old.Shutdown(ctx)
			}()
		}
	}, nil
}

// close stops serving, at exit.
func (e *endpoint) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Closing a unix listener removes its socket file, so `lvsd status`
	// then says nobody is there.
	if e.srv != nil {
		e.srv.Close()
	}
	e.srv, e.l, e.addr = nil, nil, ""
}
