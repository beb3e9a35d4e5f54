package e2e

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
)

// The status page against the real IPVS table, in the VM: over HTTP (the
// server-rendered tables, the CSV, a refused POST), and with
// LVSD_E2E_CHROMIUM=1 in Debian's Chromium (FIELD-NOTES: qemu -cpu max,
// HOME and TMPDIR on /run, --no-zygote, ~45 s per page under TCG on an
// idle host; on this loaded one it did not render within 8 minutes).

// checkStatusPage reads the page and CSV of the lvsd at addr from ns and
// checks that every real server of want is listed with its health word,
// and that a POST is refused with actions off.
func checkStatusPage(t *testing.T, ns *lab.NS, addr string, want map[string]string) {
	t.Helper()
	hc := ns.HTTPClient(10 * time.Second)
	get := func(path string) string {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s%s: %s", addr, path, resp.Status)
		}
		return string(b)
	}
	page := get("/")
	for rs, health := range want {
		if err := rowReads(page, rs, health); err != nil {
			t.Errorf("status page of %s: %v", addr, err)
		}
	}
	rows, err := csv.NewReader(strings.NewReader(get("/status.csv"))).ReadAll()
	if err != nil || len(rows) != len(want)+1 {
		t.Fatalf("status.csv of %s: %v, %d rows for %d real servers", addr, err, len(rows), len(want))
	}
	for _, r := range rows[1:] {
		if h := want[r[3]]; h != r[4] {
			t.Errorf("status.csv of %s: %s is %q, want %q", addr, r[3], r[4], h)
		}
	}
	resp, err := hc.PostForm("http://"+addr+"/actions/drain", url.Values{"service": {"echo"}, "realserver": {rows[1][3]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /actions/drain with actions off: %s, want 403", resp.Status)
	}
}

// rowReads checks that the page's row of real server rs of echo has the
// health word health.
func rowReads(page, rs, health string) error {
	i := strings.Index(page, fmt.Sprintf(`data-key="rs/echo/%s"`, rs))
	if i < 0 {
		return fmt.Errorf("no row for %s", rs)
	}
	row := page[i:]
	if end := strings.Index(row, "</tr>"); end >= 0 {
		row = row[:end]
	}
	if !strings.Contains(row, fmt.Sprintf(`<span class="word %s">%s</span>`, health, health)) {
		return fmt.Errorf("%s is not %s: %s", rs, health, row)
	}
	return nil
}

// chromiumDOM loads url in headless Chromium inside ns and returns the DOM
// after the page's script ran; errNoChromium when it is not installed.
func chromiumDOM(t *testing.T, ns *lab.NS, dir, url string, timeout time.Duration) (string, error) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		return "", errNoChromium
	}
	home := filepath.Join(dir, "chromium")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", err
	}
	cmd := ns.Command(path, "--headless=new", "--no-sandbox", "--no-zygote", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(home, "profile"), "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home, "TMPDIR="+home)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("chromium: %w: %s", err, tailLines(errOut.String(), 5))
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%w: %s", errChromiumSlow, tailLines(errOut.String(), 5))
	}
	return out.String(), nil
}

var (
	errNoChromium   = errors.New("chromium is not installed")
	errChromiumSlow = errors.New("chromium did not finish in time")
)

// chromiumTimeout bounds one page in Chromium inside the VM: FIELD-NOTES
// measured ~45 s per page under TCG on an idle host; several VMs on the
// same two cores make it minutes.
const chromiumTimeout = 8 * time.Minute

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
