package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportExitCodes: 0 complete, 3 incomplete (with notes on stderr),
// 1 on a parse error with nothing on stdout, 2 on bad usage.
func TestImportExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	complete := write("complete.conf", "virtual_server 192.0.2.10 80 {\n real_server 10.0.0.1 80 {\n }\n}\n")
	incomplete := write("incomplete.conf", "virtual_server 192.0.2.10 80 {\n smtp_alert\n real_server 10.0.0.1 80 {\n }\n}\n")
	broken := write("broken.conf", "virtual_server 192.0.2.10 80 {\n real_server 10.0.0.1 80 {\n}\n")
	cases := []struct {
		args             []string
		code             int
		stdout, stderrIn string
	}{
		{[]string{"import", "keepalived", complete}, 0, `vip = "192.0.2.10"`, ""},
		{[]string{"import", "keepalived", incomplete}, 3, `vip = "192.0.2.10"`, "incomplete.conf:2: smtp_alert: not carried over"},
		{[]string{"import", "keepalived", broken}, 1, "", "broken.conf:1: virtual_server: '{' is never closed"},
		{[]string{"import", "keepalived"}, 2, "", "usage"},
		{[]string{"import", "haproxy", complete}, 2, "", "usage"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := dispatch(c.args, &out, &errb)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %s)", c.args, code, c.code, errb.String())
		}
		if c.stdout == "" && out.Len() > 0 {
			t.Errorf("%v: printed on stdout: %s", c.args, out.String())
		}
		if !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderrIn) {
			t.Errorf("%v: stdout %q, stderr %q", c.args, out.String(), errb.String())
		}
	}
}
