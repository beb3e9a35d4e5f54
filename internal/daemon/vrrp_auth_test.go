package daemon

import (
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	authHexKey   = "5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a"
	authFileKey  = "ascii key read from a 0600 file, 45 bytes!!"
	authFileKey2 = "the same file, rotated before a reload: 43 b"
)

// TestVRRPAuthStatusAndNoKeyLeaks: an instance with [vrrp.auth] shows its
// mode and key ids in `lvsd status` (JSON and text), and no key, inline or
// read from a file, appears in the status, the metrics page or the log,
// also after a reload that re-read the rotated key file (in place, no
// transition).
func TestVRRPAuthStatusAndNoKeyLeaks(t *testing.T) {
	c := newLabConfig(t)
	keyFile := filepath.Join(c.Dir, "vrrp51-2")
	if err := os.WriteFile(keyFile, []byte(authFileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Extra = labVRRP + `
  [vrrp.auth]
  active_key = 2
    [[vrrp.auth.key]]
    id = 1
    secret = "hex:` + authHexKey + `"
    [[vrrp.auth.key]]
    id = 2
    secret = "file:` + keyFile + `"
`
	l := startLab(t, c)
	l.waitVRRP("master", 2)

	a := l.status().VRRP[0].Auth
	if a == nil || a.Mode != "enforce" || a.AntiReplay != "time" || a.ActiveKey != 2 || !slices.Equal(a.KeyIDs, []int{1, 2}) || len(a.Drops) != 6 {
		t.Fatalf("status auth: %+v", a)
	}
	if table := l.statusTable(); !tableHasRow(table, []string{"vi1", "51", "lab0", "master", "150", "150", "enforce", "key", "2"}) ||
		!strings.Contains(table, "vi1 auth: time, keys [1 2], verified 0, unsigned accepted 0; dropped: none") {
		t.Errorf("lvsd status:\n%s", table)
	}
	transitions := l.vrrpTransitions()
	if err := os.WriteFile(keyFile, []byte(authFileKey2), 0o600); err != nil {
		t.Fatal(err)
	}
	l.reload()
	if n := l.vrrpTransitions(); n != transitions {
		t.Errorf("rotating a key file made VRRP transitions: %v -> %v", transitions, n)
	}
	if !strings.Contains(l.logs.String(), "changed=auth") {
		t.Errorf("the reload did not apply the rotated key:\n%s", l.logs.String())
	}

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + l.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	// The document as served, not as these types decode it: a field they
	// lack could leak too.
	statusJSON := get("/status")
	statusText := l.statusTable()
	page := get("/metrics")
	for name, text := range map[string]string{"status -json": statusJSON, "status": statusText, "metrics": page, "log": l.logs.String()} {
		for _, secret := range []string{authHexKey, authFileKey, authFileKey2, hex.EncodeToString([]byte(authFileKey)), hex.EncodeToString([]byte(authFileKey2)), authFileKey[:12]} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows a key (%q)", name, secret)
			}
		}
	}
	if !strings.Contains(page, `lvsd_vrrp_adverts_sent_total{vrrp_instance="vi1"}`) {
		t.Errorf("the metrics page lacks the VRRP series it was grepped for")
	}
}
