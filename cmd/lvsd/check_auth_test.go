package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	authHexKey  = "5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a5ec12e7a"
	authFileKey = "ascii key read from a 0600 file, 45 bytes!!"
)

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
