package config

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// VRRPAuth is [vrrp.auth]: adverts signed with HMAC-SHA256 in a trailer, as
// keepalived 2.4's auth_hmac sends them.
type VRRPAuth struct {
	// Mode is "enforce" (the default: an advert without a valid trailer is
	// dropped), "permissive" (sign, and accept unsigned adverts too) or
	// "receive-only" (verify a trailer when there is one, sign nothing).
	// receive-only, then permissive, then enforce rolls a pair out with
	// no transition.
	Mode string `toml:"mode"`
	// AntiReplay is "time" (the default: a trailer must be stamped within
	// TimeWindow of our clock, and each sender's sequence must grow) or
	// "monotonic" (the sequence must grow; the clocks need not agree).
	AntiReplay string `toml:"anti_replay"`
	// TimeWindow defaults to max(3 x advert_interval, 5s); 1s..300s.
	TimeWindow Duration `toml:"time_window"`
	// ActiveKey is the id of the key that signs; it defaults to the only
	// key when there is one.
	ActiveKey int       `toml:"active_key"`
	Keys      []VRRPKey `toml:"key"`
}

// VRRPKey is one [[vrrp.auth.key]]. Every configured key verifies, so a
// key rotates without a transition: add it everywhere, move active_key to
// it everywhere, then remove the old one.
type VRRPKey struct {
	ID     int    `toml:"id"` // 1..255
	Secret Secret `toml:"secret"`
}

// Auth modes and anti-replay schemes.
const (
	AuthEnforce     = "enforce"
	AuthPermissive  = "permissive"
	AuthReceiveOnly = "receive-only"
	AntiReplayTime  = "time"
	AntiReplayMono  = "monotonic"
)

// Signs says whether the instance sends a trailer (every mode but
// receive-only).
func (a *VRRPAuth) Signs() bool { return a.Mode != AuthReceiveOnly }

// Key lengths of keepalived's auth_hmac: the 32-byte floor keeps a 128-bit
// margin against a quantum search.
const (
	SecretMinLen = 32
	SecretMaxLen = 64
)

// Secret is key material: "hex:" and the bytes in hex, "file:" and the path
// of a file holding either form, or an ASCII string of 32..64 bytes. A file
// path may use $CREDENTIALS_DIRECTORY, which systemd sets for a unit with
// LoadCredential=. The file is read, and refused when group or others may
// access it, whenever the config is loaded, so a reload re-reads it.
//
// A Secret never prints: fmt, slog and text marshalling show "[redacted]",
// so no log line, status or dump can carry a key. The bytes sit behind a
// pointer as well, which fmt's reflection (a wrong verb on an enclosing
// struct bypasses the methods) prints as an address.
type Secret struct {
	v *secretValue
}

type secretValue struct{ b []byte }

const redacted = "[redacted]"

// Bytes returns the key material; the caller must not change it.
func (s Secret) Bytes() []byte {
	if s.v == nil {
		return nil
	}
	return s.v.b
}

// Equal compares two secrets in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.Bytes(), o.Bytes()) == 1 }

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return "config.Secret{" + redacted + "}" }
func (s Secret) Format(f fmt.State, _ rune)   { io.WriteString(f, redacted) }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// UnmarshalText reads the secret's value; errors never quote it.
func (s *Secret) UnmarshalText(text []byte) error {
	v := string(text)
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := readKeyFile(path)
		if err != nil {
			return err
		}
		s.v = &secretValue{b: b}
		return nil
	}
	b, err := decodeSecret(v)
	if err != nil {
		return err
	}
	s.v = &secretValue{b: b}
	return nil
}

// decodeSecret reads "hex:..." or an ASCII string, and checks the length.
func decodeSecret(v string) ([]byte, error) {
	var b []byte
	if h, ok := strings.CutPrefix(v, "hex:"); ok {
		var err error
		if b, err = hex.DecodeString(h); err != nil {
			return nil, errors.New("hex: must be followed by an even number of hex digits and nothing else")
		}
	} else {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return nil, fmt.Errorf("byte %d is not printable ASCII (write other bytes as hex:)", i+1)
			}
		}
		b = []byte(v)
	}
	if len(b) < SecretMinLen || len(b) > SecretMaxLen {
		return nil, fmt.Errorf("a key is %d..%d bytes, this one has %d", SecretMinLen, SecretMaxLen, len(b))
	}
	return b, nil
}

// readKeyFile reads a key file as keepalived does: the file holds what the
// value would (hex: or ASCII), a trailing newline is dropped, and a file
// that group or others may read is refused.
func readKeyFile(path string) ([]byte, error) {
	const cred = "CREDENTIALS_DIRECTORY"
	if strings.Contains(path, "$") {
		dir := os.Getenv(cred)
		expanded := os.Expand(path, func(name string) string {
			if name == cred {
				return dir
			}
			return "$" + name
		})
		if dir == "" && expanded != path {
			return nil, fmt.Errorf("key file %s: $%s is not set (systemd sets it for a unit with LoadCredential=)", path, cred)
		}
		path = expanded
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("key file %s: the path must be absolute", path)
	}
	data, err := readSecretFile("key file", path, func(perm fs.FileMode) error {
		if perm&0o077 != 0 {
			return fmt.Errorf("key file %s may be read by group or others (mode %04o): chmod 600 it", path, perm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v := strings.TrimRight(string(data), "\r\n")
	if strings.HasPrefix(v, "file:") {
		return nil, fmt.Errorf("key file %s names another file; it must hold the key (hex: or ASCII)", path)
	}
	b, err := decodeSecret(v)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return b, nil
}

// vrrpAuth fills the defaults of [vrrp.auth] and checks it (the instance's
// advert_interval already has its default).
func (l *loader) vrrpAuth(v *VRRP, at loc) {
	a := v.Auth
	if a == nil {
		return
	}
	g := l.given[at.raw()]
	if g.unset("mode", a.Mode == "") {
		a.Mode = AuthEnforce
	}
	l.enum(at.key("mode"), a.Mode, []string{AuthReceiveOnly, AuthPermissive, AuthEnforce})
	if g.unset("anti_replay", a.AntiReplay == "") {
		a.AntiReplay = AntiReplayTime
	}
	l.enum(at.key("anti_replay"), a.AntiReplay, []string{AntiReplayTime, AntiReplayMono})
	if g.unset("time_window", a.TimeWindow.Duration == 0) {
		a.TimeWindow.Duration = max(3*v.AdvertInterval.Duration, 5*time.Second)
	}
	if w := a.TimeWindow.Duration; w < time.Second || w > 300*time.Second {
		l.errorf(at.key("time_window"), "%s out of range 1s..300s", w)
	}
	if len(a.Keys) == 0 && !l.failed[at.key("key").raw()] {
		l.errorf(at.key("key"), "at least one [[vrrp.auth.key]] is required")
	}
	ids := map[int]int{}
	for i := range a.Keys {
		k := &a.Keys[i]
		kat := at.key("key").elem(i, strconv.Itoa(i+1))
		kg := l.given[kat.raw()]
		switch j, dup := ids[k.ID]; {
		case !kg["id"]:
			l.errorf(kat.key("id"), "required (1..255)")
		case k.ID < 1 || k.ID > 255:
			l.errorf(kat.key("id"), "%d out of range 1..255", k.ID)
		case dup:
			l.errorf(kat.key("id"), "duplicate of key[%d]", j+1)
		default:
			ids[k.ID] = i
		}
		if !kg["secret"] {
			l.errorf(kat.key("secret"), `required ("hex:...", "file:PATH" or an ASCII string of %d..%d bytes)`, SecretMinLen, SecretMaxLen)
		}
	}
	switch {
	case g["active_key"]:
		if _, ok := ids[a.ActiveKey]; !ok && len(ids) > 0 {
			l.errorf(at.key("active_key"), "%d is not the id of a [[vrrp.auth.key]]", a.ActiveKey)
		}
	case len(a.Keys) == 1:
		a.ActiveKey = a.Keys[0].ID
	case len(a.Keys) > 1 && a.Signs():
		l.errorf(at.key("active_key"), "required: which of the %d keys signs", len(a.Keys))
	}
}
