package daemon

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestReloadMovesTheMetricsListener: a reload that changes metrics_listen
// serves /metrics on the new address and stops the old one; a reload to an
// address in use is refused, and the running listener keeps serving.
func TestReloadMovesTheMetricsListener(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.scrape()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	old := c.Metrics
	c.Metrics = busy.Addr().String()
	l.write(c.render(t))
	if err := l.client().Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Fatalf("reload to a port in use: %v; want a refusal naming metrics_listen", err)
	}
	l.scrape() // still on the old address

	c.Metrics = freeLoopbackAddr(t)
	l.write(c.render(t))
	l.reload()
	l.metrics = c.Metrics
	if v := l.scrape().value("lvsd_config_last_reload_successful"); v != 1 {
		t.Errorf("lvsd_config_last_reload_successful on the new address = %v", v)
	}
	if resp, err := http.Get("http://" + old + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("the old address %s still answers after the move", old)
	}
}
