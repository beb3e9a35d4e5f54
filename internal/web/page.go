package web

import (
	"bytes"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

// changedWindow is how long a row whose state changed stays marked.
const changedWindow = 30 * time.Second

// The columns the page lays out itself; any other field of these objects
// goes to the row's "more" cell (generic.go).
var (
	knownTop      = []string{"node", "config", "version", "last_reload", "last_reload_successful", "last_reload_error", "services", "vrrp", "time", "sync", "actions"}
	knownService  = []string{"name", "address", "scheduler", "in_kernel", "sorry_active", "realservers", "protocol", "vip", "port", "fwmark", "forwarding", "quorum_up", "quorum", "rates"}
	knownServer   = []string{"address", "health", "reason", "latency_ns", "last_check", "weight", "kernel_weight", "drained", "held_by_guard", "active_conns", "inactive_conns", "consecutive_successes", "consecutive_failures", "health_since", "last_check_result", "warming", "forwarding", "rates"}
	knownInstance = []string{"name", "vrid", "interface", "state", "priority", "master_priority", "vips", "preempt_held", "master", "since", "transitions", "adverts_sent", "adverts_received", "drops"}
)

type pageView struct {
	R        status.Report
	Title    string
	Now      string
	Reload   reloadView
	Summary  summary
	Services []serviceView
	VRRP     []instanceView
	Sync     *status.Sync
	Extra    []section
	Auth     string // "", "token", "basic"
	CSRF     string
}

type reloadView struct {
	When, Ago string
	OK        bool
	Err       string
}

type summary struct {
	Services, Servers, Up, Down, Unknown, Instances, Masters int
}

type serviceView struct {
	status.Service
	Key, State string
	Quorum     string // "up", "lost: sorry server in use", "lost"
	QuorumOK   bool
	Rates      rateCell
	Servers    []serverView
	Extra      []kv
}

type serverView struct {
	status.RealServer
	Key, State     string
	Since, SinceAt string
	LastAgo        string
	Latency        string
	Kernel         string // the kernel weight, or "not in table"
	Flags          []string
	Rates          rateCell
	Changed        bool
	Extra          []kv
	CanDrain       bool
	CanUndrain     bool
	Service        string
}

type instanceView struct {
	status.Instance
	Key, State     string
	Since, SinceAt string
	Drops          []kv
	Changed        bool
	Extra          []kv
}

func view(r status.Report, auth, csrf string) pageView {
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	doc := asJSONMap(r)
	v := pageView{R: r, Title: "lvsd on " + r.Node, Now: clock(now), Auth: auth, CSRF: csrf, Sync: r.Sync,
		Reload: reloadView{When: clock(r.LastReload), Ago: ago(r.LastReload, now), OK: r.ReloadOK, Err: r.ReloadErr},
		Extra:  extraSections(doc, knownTop...)}
	for i, s := range r.Services {
		sdoc := jsonItem(doc, "services", i)
		sv := serviceView{Service: s, Key: "svc/" + s.Name, Rates: rates(s.Rates), Extra: extraFields(sdoc, knownService...)}
		switch {
		case s.QuorumUp:
			sv.Quorum, sv.QuorumOK = "up", true
		case s.SorryActive:
			sv.Quorum = "lost: sorry server in use"
		default:
			sv.Quorum = "lost"
		}
		sv.State = sv.Quorum
		v.Summary.Services++
		for j, rs := range s.RealServers {
			v.Summary.Servers++
			switch rs.Health {
			case "up":
				v.Summary.Up++
			case "down":
				v.Summary.Down++
			default:
				v.Summary.Unknown++
			}
			sv.Servers = append(sv.Servers, server(s.Name, rs, jsonItem(sdoc, "realservers", j), now, auth != ""))
		}
		v.Services = append(v.Services, sv)
	}
	for i, in := range r.VRRP {
		iv := instanceView{Instance: in, Key: "vrrp/" + in.Name, State: in.State, Since: ago(in.Since, now), SinceAt: clock(in.Since),
			Changed: changedSince(in.Since, now), Extra: extraFields(jsonItem(doc, "vrrp", i), knownInstance...)}
		for _, reason := range slices.Sorted(maps.Keys(in.Drops)) {
			iv.Drops = append(iv.Drops, kv{Key: reason, Value: fmt.Sprint(in.Drops[reason])})
		}
		v.Summary.Instances++
		if in.State == "master" {
			v.Summary.Masters++
		}
		v.VRRP = append(v.VRRP, iv)
	}
	return v
}

// server is one real server's row; rsDoc is its JSON, for the fields the
// page has no column for.
func server(service string, rs status.RealServer, rsDoc map[string]any, now time.Time, actions bool) serverView {
	sv := serverView{RealServer: rs, Service: service, Key: "rs/" + service + "/" + rs.Address,
		Since: ago(rs.HealthSince, now), SinceAt: clock(rs.HealthSince), LastAgo: ago(rs.LastCheck, now),
		Latency: latency(rs.Latency), Rates: rates(rs.Rates), Changed: changedSince(rs.HealthSince, now),
		Extra: extraFields(rsDoc, knownServer...)}
	sv.Kernel = fmt.Sprint(rs.KernelWeight)
	if rs.KernelWeight < 0 {
		sv.Kernel = "not in table"
	}
	if rs.Drained {
		sv.Flags = append(sv.Flags, "drained")
	}
	if rs.Warming {
		sv.Flags = append(sv.Flags, "warming up")
	}
	if rs.HeldByGuard {
		sv.Flags = append(sv.Flags, "held by the eviction guard")
	}
	if len(sv.Flags) == 0 {
		switch {
		case rs.KernelWeight > 0:
			sv.Flags = append(sv.Flags, "in service")
		case rs.KernelWeight == 0:
			sv.Flags = append(sv.Flags, "weight 0")
		default:
			sv.Flags = append(sv.Flags, "out of the table")
		}
	}
	// The state a change of which marks the row: not the counters.
	sv.State = strings.Join(append([]string{rs.Health}, sv.Flags...), ",")
	if rs.Address != "sorry" {
		sv.CanDrain, sv.CanUndrain = actions && !rs.Drained, actions && rs.Drained
	}
	return sv
}

func changedSince(t, now time.Time) bool {
	return !t.IsZero() && now.Sub(t) < changedWindow && now.Sub(t) >= 0
}

// refusal is the page a refused form post without the script gets: why,
// and with a token credential, a form to give the token and try again.
type refusal struct {
	Why, Verb, Target             string
	Service, RealServer, Instance string
	CSRF                          string
	AskToken                      bool
}

type pageRenderer struct{ t *template.Template }

func pageTemplate() pageRenderer {
	funcs := template.FuncMap{
		"join": strings.Join,
	}
	return pageRenderer{template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html"))}
}

func (p pageRenderer) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := p.t.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

func (p pageRenderer) refused(w http.ResponseWriter, code int, r refusal) {
	p.render(w, code, "refused.html", r)
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	st := h.c.Status(r.Context())
	h.page.render(w, http.StatusOK, "page.html", view(st, h.settings().Auth(), h.csrf.token))
}
