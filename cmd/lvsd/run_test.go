package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestStatusWithoutADaemon(t *testing.T) {
	var out, errOut strings.Builder
	code := dispatch([]string{"status", "-socket", t.TempDir() + "/none.sock"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "cannot reach lvsd") {
		t.Errorf("lvsd status with no daemon: exit %d, %q", code, errOut.String())
	}
}

func TestLogFormats(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   func(line string) bool
	}{
		{"text", func(l string) bool { return strings.Contains(l, "service=web realserver=192.0.2.1:80") }},
		{"json", func(l string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(l), &m) == nil && m["service"] == "web" && m["realserver"] == "192.0.2.1:80"
		}},
	} {
		var b strings.Builder
		log, err := newLogger(&b, tc.format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("hidden at info")
		log.Warn("real server health", "service", "web", "realserver", "192.0.2.1:80")
		if line := strings.TrimSpace(b.String()); strings.Contains(line, "\n") || !tc.want(line) {
			t.Errorf("-log-format %s wrote %q", tc.format, line)
		}
	}
	if _, err := newLogger(io.Discard, "xml", "info"); err == nil || !strings.Contains(err.Error(), "-log-format") {
		t.Errorf("-log-format xml: %v", err)
	}
	if _, err := newLogger(io.Discard, "text", "loud"); err == nil || !strings.Contains(err.Error(), "-log-level") {
		t.Errorf("-log-level loud: %v", err)
	}
}
