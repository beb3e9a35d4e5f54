package config_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lvsd/lvsd/config"
)

// webConfig writes a config whose [director.web] is web, and loads it.
func loadWeb(t *testing.T, listen, web string) (*config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lvsd.toml")
	text := "[director]\ninterface = \"eth0\"\nmetrics_listen = \"" + listen + "\"\n\n  [director.web]\n" + web +
		"\n[[service]]\nname = \"web\"\nvip = \"192.0.2.10\"\nport = 80\n\n  [[service.realserver]]\n  address = \"10.0.1.2\"\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return config.Load(path)
}

func writeToken(t *testing.T, token string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWebDefaultsOff(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-minimal.toml")
	if w := cfg.Director.Web; w.Actions || w.Auth() != "" {
		t.Errorf("actions are on by default: %+v", w)
	}
}

func TestWebToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	path := writeToken(t, token+"\n", 0o600)
	cfg, err := loadWeb(t, "127.0.0.1:9910", "  actions = true\n  token_file = \""+path+"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Director.Web
	if w.Auth() != "token" || w.TokenSHA256 != sha256.Sum256([]byte(token)) {
		t.Errorf("token not read: auth %q", w.Auth())
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings on a loopback listener: %v", cfg.Warnings)
	}
	// A %+v of the config shows neither the token nor its digest.
	sum := sha256.Sum256([]byte(token))
	if s := fmt.Sprintf("%+v", cfg.Director); strings.Contains(s, token) || strings.Contains(s, fmt.Sprint(sum[0], " ", sum[1])) {
		t.Errorf("the credential shows in %s", s)
	}
}

func TestWebTokenFileRefused(t *testing.T) {
	for _, c := range []struct {
		name, token string
		mode        os.FileMode
		want        string
	}{
		{"readable by others", "0123456789abcdef-token", 0o644, "is readable by others (mode 0644); chmod 600 it"},
		{"too short", "short", 0o600, "is 5 characters; want at least 16"},
		{"empty", "  \n", 0o600, "is 0 characters; want at least 16"},
	} {
		path := writeToken(t, c.token, c.mode)
		_, err := loadWeb(t, "127.0.0.1:9910", "  actions = true\n  token_file = \""+path+"\"\n")
		if err == nil || !strings.Contains(err.Error(), "director.web.token_file: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
		if err != nil && strings.TrimSpace(c.token) != "" && strings.Contains(err.Error(), c.token) {
			t.Errorf("%s: the error shows the token: %v", c.name, err)
		}
	}
	_, err := loadWeb(t, "127.0.0.1:9910", "  actions = true\n  token_file = \"/nonexistent/lvsd.token\"\n")
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing token file: %v", err)
	}
}

// A token_file that names a FIFO is refused as not a regular file; the
// load does not wait for a writer that never comes.
func TestWebTokenFileFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadWeb(t, "127.0.0.1:9910", "  actions = true\n  token_file = \""+path+"\"\n")
	if err == nil || !strings.Contains(err.Error(), "director.web.token_file: token file "+path+" is not a regular file") {
		t.Fatalf("a FIFO as token_file: %v", err)
	}
}

func TestWebWarnsOffLoopback(t *testing.T) {
	path := writeToken(t, "0123456789abcdef-token", 0o600)
	cfg, err := loadWeb(t, "0.0.0.0:9910", "  actions = true\n  token_file = \""+path+"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Error(), "director.web.actions: metrics_listen 0.0.0.0:9910 is plain HTTP") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}
