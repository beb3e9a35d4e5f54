package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// statusPage fetches the active director's status page and CSV over its
// metrics listener, from inside its namespace, as a browser on that host
// would, and shows the CSV: one row per real server with the same health
// word as the page.
func statusPage(l *lab, d *director) {
	n := l.n
	addr := d.cfg.Director.MetricsListen
	n.say("STEP 8  the status page on %s: http://%s/ (a browser on the director; here, from inside its namespace)", d.name, addr)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.host.DialContext, DisableKeepAlives: true}}
	get := func(path string) (string, error) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s", resp.Status)
		}
		return string(b), err
	}
	page, err := get("/")
	if err != nil {
		n.fail("GET http://%s/ on %s: %v", addr, d.name, err)
		return
	}
	for _, want := range []string{"<table", `class="word up"`, "/status.csv"} {
		if !strings.Contains(page, want) {
			n.fail("the status page of %s lacks %s", d.name, want)
		}
	}
	text, err := get("/status.csv")
	if err != nil {
		n.fail("GET http://%s/status.csv on %s: %v", addr, d.name, err)
		return
	}
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil || len(rows) < 2 {
		n.fail("status.csv of %s: %v (%d rows)", d.name, err, len(rows))
		return
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-22s %-7s %-6s %s", "SERVICE", "REALSERVER", "HEALTH", "KERNEL", "LAST CHECK")
	for _, r := range rows[1:] {
		fmt.Fprintf(&b, "\n%-8s %-22s %-7s %-6s %s", r[col["service"]], r[col["realserver"]], r[col["health"]], r[col["kernel_weight"]], r[col["last_check_result"]])
	}
	n.say("$ curl http://%s/status.csv  (%d real servers; the page's tables refresh every second)\n%s", addr, len(rows)-1, indent(b.String()))
}

// pageAddress is the demo's last line: where the status page lives.
func pageAddress(l *lab) string {
	return fmt.Sprintf("status page: http://%s/ on each director (metrics_listen; JSON at /status, CSV at /status.csv). "+
		"Run lvsd with examples/pair-a.toml and open it in a browser; the demo's directors served theirs inside their namespaces.",
		l.dirs[0].cfg.Director.MetricsListen)
}
