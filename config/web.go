package config

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Web is [director.web]: the status page served at / on metrics_listen.
// The page is read-only unless Actions is on, and Actions needs a
// credential: a token (TokenFile) or HTTP basic auth (User and a bcrypt
// PasswordHash). Nothing here is ever logged or shown.
type Web struct {
	// Actions puts drain/undrain and takeover/giveup buttons on the page.
	// Default false: the page is read-only and refuses every POST.
	Actions bool `toml:"actions"`
	// TokenFile holds the token a request must carry (at least 16
	// characters; surrounding whitespace is ignored). It must be readable
	// by its owner only.
	TokenFile string `toml:"token_file"`
	// User and PasswordHash are HTTP basic auth; PasswordHash is bcrypt
	// ("$2a$...", "$2b$...", "$2y$...", as htpasswd -B makes).
	User         string `toml:"user"`
	PasswordHash string `toml:"password_hash"`

	// TokenSHA256 is the SHA-256 of the token, read from TokenFile by Load:
	// the daemon compares digests and never holds the token itself.
	TokenSHA256 [sha256.Size]byte `toml:"-" json:"-"`
}

// Auth is how actions authenticate: "token", "basic", or "" when they
// are off.
func (w Web) Auth() string {
	switch {
	case !w.Actions:
		return ""
	case w.TokenFile != "":
		return "token"
	}
	return "basic"
}

// minTokenLen keeps a token out of reach of guessing over HTTP.
const minTokenLen = 16

func (l *loader) web(w *Web, at loc, metricsListen string) {
	if w.User != "" && strings.ContainsAny(w.User, ":\r\n") {
		l.errorf(at.key("user"), "must not contain ':' or a line break (HTTP basic auth)")
	}
	if w.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(w.PasswordHash)); err != nil {
			// The hash itself is not echoed: it is half of a credential.
			l.errorf(at.key("password_hash"), "not a bcrypt hash (want \"$2b$...\", as `htpasswd -nbB USER PASSWORD` or `mkpasswd -m bcrypt` print): %v", err)
		}
	}
	switch {
	case (w.User == "") != (w.PasswordHash == ""):
		missing := "password_hash"
		if w.User == "" {
			missing = "user"
		}
		l.errorf(at.key(missing), "required with %s (HTTP basic auth needs both)", map[string]string{"user": "password_hash", "password_hash": "user"}[missing])
	case w.TokenFile != "" && w.User != "":
		l.errorf(at.key("token_file"), "give token_file or user and password_hash, not both")
	case w.Actions && w.TokenFile == "" && w.User == "":
		l.errorf(at.key("actions"), "actions need a credential: token_file, or user and password_hash")
	}
	if w.TokenFile != "" {
		l.tokenFile(w, at.key("token_file"))
	}
	if w.Actions && metricsListen == "" {
		l.errorf(at.key("actions"), "the status page is served on metrics_listen, which is off")
	}
	if w.Actions && metricsListen != "" {
		host, _, _ := net.SplitHostPort(metricsListen)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			l.warnf(at.key("actions"), "metrics_listen %s is plain HTTP beyond this host: the credential crosses the network in clear; put a TLS proxy in front or keep it on a management network", metricsListen)
		}
	}
}

// tokenFile reads the token and keeps its digest. A token others can read
// is refused, as ssh refuses a private key they can read.
func (l *loader) tokenFile(w *Web, at loc) {
	if !filepath.IsAbs(w.TokenFile) {
		l.errorf(at, "%q must be an absolute path", w.TokenFile)
		return
	}
	data, err := readSecretFile("token file", w.TokenFile, func(perm fs.FileMode) error {
		if perm&0o077 != 0 {
			return fmt.Errorf("%s is readable by others (mode %04o); chmod 600 it", w.TokenFile, perm)
		}
		return nil
	})
	if err != nil {
		l.errorf(at, "%v", err)
		return
	}
	token := strings.TrimSpace(string(data))
	if len(token) < minTokenLen {
		l.errorf(at, "the token in %s is %d characters; want at least %d (e.g. `head -c 32 /dev/urandom | base64`)", w.TokenFile, len(token), minTokenLen)
		return
	}
	w.TokenSHA256 = sha256.Sum256([]byte(token))
}

// String keeps the credential out of any %v of the config.
func (w Web) String() string {
	return fmt.Sprintf("{actions:%v auth:%q}", w.Actions, w.Auth())
}
