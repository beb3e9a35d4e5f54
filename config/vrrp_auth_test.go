package config_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

const (
	hexKey   = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	asciiKey = "correct horse battery staple, 32+ bytes"
)

func authConfig(interval, auth string) string {
	return fmt.Sprintf(`[director]
interface = "eth0"

[[vrrp]]
name = "vi1"
vrid = 51
advert_interval = %q
vips = ["192.0.2.10/24"]

%s
`, interval, auth)
}

func parse(t *testing.T, src string) (*config.Config, error) {
	t.Helper()
	return config.Parse("test.toml", []byte(src))
}

func mustParse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := parse(t, src)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

func TestVRRPAuthDefaults(t *testing.T) {
	cfg := mustParse(t, authConfig("100ms", `
  [vrrp.auth]
    [[vrrp.auth.key]]
    id = 7
    secret = "hex:`+hexKey+`"`))
	v := cfg.VRRP[0]
	a := v.Auth
	if a.Mode != "enforce" || a.AntiReplay != "time" || a.TimeWindow.Duration != 5*time.Second || a.ActiveKey != 7 || !a.Signs() {
		t.Errorf("auth defaults: %+v", *a)
	}
	if v.UnicastTTL != 255 || v.MinTTL != 0 {
		t.Errorf("ttl defaults: unicast_ttl %d, min_ttl %d", v.UnicastTTL, v.MinTTL)
	}
	if got := hex.EncodeToString(a.Keys[0].Secret.Bytes()); got != hexKey {
		t.Errorf("secret %s", got)
	}
	// The window follows a slow interval: 3 x 4s.
	cfg = mustParse(t, authConfig("4s", `
  [vrrp.auth]
  mode = "receive-only"
    [[vrrp.auth.key]]
    id = 1
    secret = "`+asciiKey+`"
    [[vrrp.auth.key]]
    id = 2
    secret = "hex:`+hexKey+`"`))
	a = cfg.VRRP[0].Auth
	if a.TimeWindow.Duration != 12*time.Second || a.Signs() || a.ActiveKey != 0 {
		t.Errorf("receive-only with two keys: %+v", *a)
	}
	if string(a.Keys[0].Secret.Bytes()) != asciiKey {
		t.Errorf("ASCII secret read as %q", a.Keys[0].Secret.Bytes())
	}
	if cfg := mustParse(t, authConfig("1s", "")); cfg.VRRP[0].Auth != nil {
		t.Error("no [vrrp.auth] must leave Auth nil")
	}
}

func writeKey(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func keyConfig(secret string) string {
	return authConfig("1s", `
  [vrrp.auth]
    [[vrrp.auth.key]]
    id = 1
    secret = "`+secret+`"`)
}

// TestVRRPAuthKeyFiles: a key file holds what the value would (hex: or
// ASCII, a trailing newline dropped), may live in systemd's credentials
// directory, is refused when group or others may read it, and is read
// again by every load (a reload rotates it).
func TestVRRPAuthKeyFiles(t *testing.T) {
	dir := t.TempDir()
	hexFile := writeKey(t, dir, "vrrp51", "hex:"+hexKey+"\n", 0o600)
	asciiFile := writeKey(t, dir, "ascii", asciiKey+"\r\n", 0o400)
	for _, tt := range []struct{ secret, want string }{
		{"file:" + hexFile, hexKey},
		{"file:" + asciiFile, hex.EncodeToString([]byte(asciiKey))},
	} {
		cfg := mustParse(t, keyConfig(tt.secret))
		if got := hex.EncodeToString(cfg.VRRP[0].Auth.Keys[0].Secret.Bytes()); got != tt.want {
			t.Errorf("%s: read %s, want %s", tt.secret, got, tt.want)
		}
	}

	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	for _, s := range []string{"file:$CREDENTIALS_DIRECTORY/vrrp51", "file:${CREDENTIALS_DIRECTORY}/vrrp51"} {
		cfg := mustParse(t, keyConfig(s))
		if got := hex.EncodeToString(cfg.VRRP[0].Auth.Keys[0].Secret.Bytes()); got != hexKey {
			t.Errorf("%s: read %s", s, got)
		}
	}

	// A reload reads the file again.
	writeKey(t, dir, "vrrp51", strings.Repeat("k", 40), 0o600)
	cfg := mustParse(t, keyConfig("file:"+hexFile))
	if got := string(cfg.VRRP[0].Auth.Keys[0].Secret.Bytes()); got != strings.Repeat("k", 40) {
		t.Errorf("the rotated file read as %q", got)
	}

	for _, tt := range []struct {
		name, secret, want string
		setup              func()
	}{
		{"group-readable", "file:" + writeKey(t, dir, "g", asciiKey, 0o640), "may be read by group or others (mode 0640): chmod 600 it", nil},
		{"other-readable", "file:" + writeKey(t, dir, "o", asciiKey, 0o604), "(mode 0604)", nil},
		{"a directory", "file:" + dir, "is not a regular file", nil},
		{"names another file", "file:" + writeKey(t, dir, "f", "file:"+hexFile, 0o600), "names another file", nil},
		{"too short", "file:" + writeKey(t, dir, "s", "hex:00ff", 0o600), "a key is 32..64 bytes, this one has 2", nil},
		{"no credentials directory", "file:$CREDENTIALS_DIRECTORY/vrrp51", "$CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with LoadCredential=)",
			func() { t.Setenv("CREDENTIALS_DIRECTORY", "") }},
	} {
		if tt.setup != nil {
			tt.setup()
		}
		_, err := parse(t, keyConfig(tt.secret))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "test.toml:14: vrrp[vi1].auth.key[1].secret: key file ") {
			t.Errorf("%s: error %v, want file, line, key and %q", tt.name, err, tt.want)
		}
	}
}

// TestSecretNeverPrints: no formatting of a loaded config, by fmt, slog or
// a marshaller, shows a key, in any encoding.
func TestSecretNeverPrints(t *testing.T) {
	cfg := mustParse(t, authConfig("1s", `
  [vrrp.auth]
  active_key = 1
    [[vrrp.auth.key]]
    id = 1
    secret = "hex:`+hexKey+`"
    [[vrrp.auth.key]]
    id = 2
    secret = "`+asciiKey+`"`))
	v := cfg.VRRP[0]
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		fmt.Fprintf(&out, verb+"\n", v)
		fmt.Fprintf(&out, verb+"\n", *v.Auth)
		fmt.Fprintf(&out, verb+"\n", v.Auth.Keys)
		fmt.Fprintf(&out, verb+"\n", v.Auth.Keys[1].Secret)
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "auth", v.Auth, "key", v.Auth.Keys[0], "secret", v.Auth.Keys[1].Secret)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "auth", *v.Auth, "secret", v.Auth.Keys[0].Secret)
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	for _, leak := range []string{hexKey, asciiKey, hex.EncodeToString([]byte(asciiKey)), "\\x00\\x01\\x02", "[0 1 2 3", "correct horse"} {
		if strings.Contains(out.String(), leak) {
			t.Errorf("a secret printed (%q):\n%s", leak, out.String())
		}
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("no [redacted] in:\n%s", out.String())
	}
}
