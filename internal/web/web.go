// Package web is lvsd's status page: GET / on the metrics listener renders
// the status document as HTML tables (readable without JavaScript; a small
// embedded script refreshes them every second and marks the rows whose
// state changed), GET /status.csv gives one row per real server, and, only
// when [director.web] turns actions on and sets a credential, POST
// /actions/{verb} drains a real server or hands a VRRP instance over. The
// verbs are the daemon's own, the ones the control socket calls.
//
// Everything the page needs is embedded in the binary: directors often
// have no internet, so no font, script or style comes from elsewhere.
package web

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/status"
)

// Controller is what the page reads and steers: the running daemon. The
// control socket's handler calls the same methods.
type Controller interface {
	Status(ctx context.Context) status.Report
	Drain(service, realserver string, on bool) error
	Takeover(instance string) error
	Giveup(instance string) error
}

//go:embed assets
var assets embed.FS

// Handler serves the page, the CSV, the embedded assets and the actions.
// settings is read on every request, so a reload that turns actions on or
// off, or changes the credential, takes effect at once.
func Handler(c Controller, settings func() config.Web, log *slog.Logger) http.Handler {
	h := &handler{c: c, settings: settings, log: log, csrf: newCSRF(), page: pageTemplate()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.servePage)
	mux.HandleFunc("GET /status.csv", h.serveCSV)
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheable(http.FileServerFS(static))))
	mux.HandleFunc("POST /actions/{verb}", h.serveAction)
	// Every other POST, PUT or DELETE on the page's paths is refused
	// the same way as an action while actions are off.
	mux.HandleFunc("POST /", h.refuseWrite)
	return securityHeaders(mux)
}

type handler struct {
	c        Controller
	settings func() config.Web
	log      *slog.Logger
	csrf     *csrf
	page     pageRenderer
}

// securityHeaders keeps the page from being framed (clickjacking the
// action buttons) and from loading anything but its own files.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func cacheable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		next.ServeHTTP(w, r)
	})
}
