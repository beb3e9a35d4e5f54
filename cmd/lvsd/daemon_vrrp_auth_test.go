package main

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

	_, statusJSON, _ := l.lvsd("status", "-json")
	statusText := l.statusTable()
	resp, err := http.Get("http://" + l.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for name, text := range map[string]string{"status -json": statusJSON, "status": statusText, "metrics": string(page), "log": l.logs.String()} {
		for _, secret := range []string{authHexKey, authFileKey, authFileKey2, hex.EncodeToString([]byte(authFileKey)), hex.EncodeToString([]byte(authFileKey2)), authFileKey[:12]} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows a key (%q)", name, secret)
			}
		}
	}
	if !strings.Contains(string(page), `lvsd_vrrp_adverts_sent_total{vrrp_instance="vi1"}`) {
		t.Errorf("the metrics page lacks the VRRP series it was grepped for")
	}
}

// TestCheckShowsAuthNotKeys: `lvsd check` describes [vrrp.auth] by mode and
// key ids, and refuses a key file others may read, naming file, line and key.
func TestCheckShowsAuthNotKeys(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(authFileKey), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "lvsd.toml")
	write := func() {
		if err := os.WriteFile(cfg, []byte(`[director]
interface = "lo"

[[vrrp]]
name = "vi1"
vrid = 51
vips = ["192.0.2.10/24"]
  [vrrp.auth]
  mode = "permissive"
  active_key = 2
    [[vrrp.auth.key]]
    id = 1
    secret = "hex:`+authHexKey+`"
    [[vrrp.auth.key]]
    id = 2
    secret = "file:`+keyFile+`"
`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write()
	var out, errOut strings.Builder
	if code := dispatch([]string{"check", "-config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "  auth permissive: HMAC-SHA256, signs with key 2, anti_replay time within 5s, keys 1 2\n") {
		t.Errorf("lvsd check:\n%s", out.String())
	}
	if err := os.Chmod(keyFile, 0o640); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := dispatch([]string{"check", "-config", cfg}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), cfg+":16: vrrp[vi1].auth.key[2].secret: key file "+keyFile+" may be read by group or others (mode 0640)") {
		t.Errorf("a group-readable key file: exit %d\n%s", code, errOut.String())
	}
	for _, s := range []string{out.String(), errOut.String()} {
		if strings.Contains(s, authHexKey) || strings.Contains(s, authFileKey) {
			t.Errorf("lvsd check shows a key:\n%s", s)
		}
	}
}
