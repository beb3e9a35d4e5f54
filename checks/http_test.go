package checks

import (
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("status: all good\n")) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/down", http.StatusFound) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/vhost", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "bdii.example.org" {
			http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		w.Write([]byte("vhost ok"))
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			http.Error(w, "want HEAD", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// The marker sits past the default read bound.
		w.Write([]byte(strings.Repeat("x", 64<<10+1000) + "MARKER"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	return mux
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewUnstartedServer(httpHandler())
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	target := addrOf(t, srv.Listener.Addr())
	tests := []struct {
		name    string
		h       HTTPSettings
		healthy bool
		class   string
	}{
		{name: "200 in the default 200-399", h: HTTPSettings{Path: "/ok"}, healthy: true, class: "ok"},
		{name: "503 fails the default", h: HTTPSettings{Path: "/down"}, class: "status"},
		{name: "503 wanted by range", h: HTTPSettings{Path: "/down", ExpectStatus: []string{"500-599"}}, healthy: true, class: "ok"},
		{name: "302 is judged, not followed", h: HTTPSettings{Path: "/moved"}, healthy: true, class: "ok"},
		{name: "302 outside a list", h: HTTPSettings{Path: "/moved", ExpectStatus: []string{"200", "204"}}, class: "status"},
		{name: "204 in a list", h: HTTPSettings{Path: "/nocontent", ExpectStatus: []string{"200", "204"}}, healthy: true, class: "ok"},
		{name: "404", h: HTTPSettings{Path: "/missing"}, class: "status"},
		{name: "body matches", h: HTTPSettings{Path: "/ok", ExpectBody: `status: (all )?good`}, healthy: true, class: "ok"},
		{name: "body does not match", h: HTTPSettings{Path: "/ok", ExpectBody: `^degraded`}, class: "body"},
		{name: "body read is bounded", h: HTTPSettings{Path: "/big", ExpectBody: `MARKER`}, class: "body"},
		{name: "bound raised", h: HTTPSettings{Path: "/big", ExpectBody: `MARKER`, MaxBody: 1 << 20}, healthy: true, class: "ok"},
		{name: "host header", h: HTTPSettings{Path: "/vhost", Host: "bdii.example.org", ExpectBody: "vhost ok"}, healthy: true, class: "ok"},
		{name: "missing host header", h: HTTPSettings{Path: "/vhost"}, class: "status"},
		{name: "method", h: HTTPSettings{Method: "HEAD", Path: "/head", ExpectStatus: []string{"200"}}, healthy: true, class: "ok"},
		{name: "slow server times out", h: HTTPSettings{Path: "/slow"}, class: "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			before := conns.Load()
			start := time.Now()
			r := runOnce(t, &config.Check{Type: "http", Settings: &h}, target, 500*time.Millisecond)
			wantResult(t, r, tc.healthy, tc.class)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("probe took %s despite a 500ms deadline", elapsed)
			}
			if tc.class != "timeout" && conns.Load() != before+1 {
				t.Errorf("probe made %d new connections, want exactly 1 (no reuse)", conns.Load()-before)
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(httpHandler())
	defer srv.Close()
	target := addrOf(t, srv.Listener.Addr())
	// httptest's certificate is valid for example.com and 127.0.0.1.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		h       HTTPSettings
		healthy bool
		class   string
	}{
		{name: "CA file and server name", h: HTTPSettings{Path: "/ok", CAFile: caFile, TLSServerName: "example.com"}, healthy: true, class: "ok"},
		{name: "CA file, IP SAN", h: HTTPSettings{Path: "/ok", CAFile: caFile}, healthy: true, class: "ok"},
		{name: "server name from host header", h: HTTPSettings{Path: "/ok", CAFile: caFile, Host: "example.com:443"}, healthy: true, class: "ok"},
		{name: "wrong server name", h: HTTPSettings{Path: "/ok", CAFile: caFile, TLSServerName: "bdii.example.org"}, class: "tls"},
		{name: "unknown CA", h: HTTPSettings{Path: "/ok", TLSServerName: "example.com"}, class: "tls"},
		{name: "skip verify", h: HTTPSettings{Path: "/ok", TLSSkipVerify: true, TLSServerName: "whatever"}, healthy: true, class: "ok"},
		{name: "status still judged over TLS", h: HTTPSettings{Path: "/down", TLSSkipVerify: true}, class: "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			r := runOnce(t, &config.Check{Type: "https", Settings: &h}, target, 2*time.Second)
			wantResult(t, r, tc.healthy, tc.class)
		})
	}
}

func TestHTTPSourceAddress(t *testing.T) {
	var remote atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { remote.Store(r.RemoteAddr) }))
	defer srv.Close()
	c := &config.Check{Type: "http", SourceAddress: srcAddr("127.0.0.3"), Settings: &HTTPSettings{}}
	wantResult(t, runOnce(t, c, addrOf(t, srv.Listener.Addr()), time.Second), true, "ok")
	if got, _ := remote.Load().(string); !strings.HasPrefix(got, "127.0.0.3:") {
		t.Errorf("server saw the probe from %q, want 127.0.0.3", got)
	}
}

func TestHTTPValidate(t *testing.T) {
	bad := []*config.Check{
		{Type: "http", Settings: &HTTPSettings{ExpectStatus: []string{"2xx"}}},
		{Type: "http", Settings: &HTTPSettings{ExpectStatus: []string{"399-200"}}},
		{Type: "http", Settings: &HTTPSettings{ExpectBody: "("}},
		{Type: "http", Settings: &HTTPSettings{Path: "ok"}},
		{Type: "http", Settings: &HTTPSettings{TLSSkipVerify: true}},
		{Type: "http", Settings: &TCPSettings{}},
	}
	for _, c := range bad {
		if err := validate(c); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", c.Settings)
		}
	}
}
