package checks

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/lvsd/lvsd/config"
)

const (
	slapdPath  = "/usr/sbin/slapd"
	bdiiFilter = "(|(objectClass=GlueService)(objectClass=GLUE2Service))"
	rootDN     = "cn=admin,o=grid"
	rootPW     = "secret"
)

// slapd is a throwaway slapd with back_mdb holding o=grid on a loopback
// port, and with TLS also ldaps on a second port.
type slapd struct {
	addr      netip.AddrPort
	ldapsAddr netip.AddrPort
	cmd       *exec.Cmd
}

// slapdTLS names the PEM files of slapd's certificate and key.
type slapdTLS struct{ cert, key string }

func startSlapd(t *testing.T) *slapd { return startSlapdWith(t, nil) }

func startSlapdWith(t *testing.T, tlsFiles *slapdTLS) *slapd {
	t.Helper()
	if _, err := os.Stat(slapdPath); err != nil {
		t.Skipf("slapd not installed (%v); `make deps` installs Debian's slapd", err)
	}
	schema, err := filepath.Abs("testdata/glue-min.schema")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	global := ""
	if tlsFiles != nil {
		global = fmt.Sprintf("TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", tlsFiles.cert, tlsFiles.key)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include %s
pidfile %s/slapd.pid
argsfile %s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
%sdatabase mdb
maxsize 10485760
suffix "o=grid"
rootdn "%s"
rootpw %s
directory %s/db
`, schema, dir, dir, global, rootDN, rootPW, dir)
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &slapd{addr: closedPort(t)}
	urls := "ldap://" + s.addr.String() + "/"
	wait := []netip.AddrPort{s.addr}
	if tlsFiles != nil {
		s.ldapsAddr = closedPort(t)
		urls += " ldaps://" + s.ldapsAddr.String() + "/"
		wait = append(wait, s.ldapsAddr)
	}
	var stderr strings.Builder
	// -d 0 keeps slapd in the foreground so the test owns the process.
	cmd := exec.Command(slapdPath, "-f", confFile, "-h", urls, "-d", "0")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range wait {
		for {
			c, err := net.DialTimeout("tcp", addr.String(), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slapd did not start listening on %s: %v\n%s", addr, err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

// load adds entries as the root DN: o=grid itself and then services.
func (s *slapd) load(t *testing.T, glue1, glue2 int) {
	t.Helper()
	l, err := ldap.DialURL("ldap://" + s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(rootDN, rootPW); err != nil {
		t.Fatal(err)
	}
	add := func(dn string, attrs map[string][]string) {
		req := ldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			req.Attribute(k, v)
		}
		if err := l.Add(req); err != nil {
			t.Fatalf("add %s: %v", dn, err)
		}
	}
	add("o=grid", map[string][]string{"objectClass": {"organization"}, "o": {"grid"}})
	add("ou=services,o=grid", map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"services"}})
	for i := range glue1 {
		id := fmt.Sprintf("svc%d.example.org_bdii_top", i)
		add("GlueServiceUniqueID="+id+",ou=services,o=grid", map[string][]string{"objectClass": {"GlueService"}, "GlueServiceUniqueID": {id}})
	}
	for i := range glue2 {
		id := fmt.Sprintf("urn:svc2-%d", i)
		add("GLUE2ServiceID="+id+",ou=services,o=grid", map[string][]string{"objectClass": {"GLUE2Service"}, "GLUE2ServiceID": {id}})
	}
}

func bdiiCheck(l LDAPSettings) *config.Check {
	if l.Base == "" {
		l.Base, l.Scope, l.Filter = "o=grid", "sub", bdiiFilter
	}
	return &config.Check{Type: "ldap", Settings: &l}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLDAP(t *testing.T) {
	full := startSlapd(t)
	full.load(t, 2, 1)
	empty := startSlapd(t)
	empty.load(t, 0, 0)   // o=grid exists, as in a BDII between restart and its first update
	bare := startSlapd(t) // nothing at all, not even o=grid

	goodPW := writeFile(t, rootPW+"\n")
	badPW := writeFile(t, "guess\n")
	tests := []struct {
		name    string
		server  *slapd
		l       LDAPSettings
		healthy bool
		class   string
		mention string
	}{
		{name: "populated BDII", server: full, l: LDAPSettings{ExpectEntries: 1}, healthy: true, class: "ok"},
		{name: "empty BDII after restart", server: empty, l: LDAPSettings{ExpectEntries: 1}, class: "entries", mention: "0 entries"},
		{name: "BDII without o=grid", server: bare, l: LDAPSettings{ExpectEntries: 1}, class: "entries", mention: "0 entries"},
		{name: "enough entries through sizelimit exceeded", server: full, l: LDAPSettings{ExpectEntries: 2}, healthy: true, class: "ok", mention: "2 entries"},
		{name: "all entries within a larger size limit", server: full, l: LDAPSettings{ExpectEntries: 3, SizeLimit: 100}, healthy: true, class: "ok", mention: "3 entries"},
		{name: "too few entries", server: full, l: LDAPSettings{ExpectEntries: 4}, class: "entries", mention: "3 entries, want at least 4"},
		{name: "GLUE2 only", server: full, l: LDAPSettings{Base: "o=grid", Scope: "sub", Filter: "(objectClass=GLUE2Service)"}, healthy: true, class: "ok"},
		{name: "ldirectord-style base search calls an empty BDII healthy", server: empty, l: LDAPSettings{Base: "o=grid"}, healthy: true, class: "ok"},
		{name: "simple bind", server: full, l: LDAPSettings{BindDN: rootDN, BindPasswordFile: goodPW}, healthy: true, class: "ok"},
		{name: "wrong bind password", server: full, l: LDAPSettings{BindDN: rootDN, BindPasswordFile: badPW}, class: "bind", mention: "Invalid Credentials"},
		{name: "missing password file", server: full, l: LDAPSettings{BindDN: rootDN, BindPasswordFile: "/nonexistent/pw"}, class: "bind"},
		{name: "starttls refused by a server without TLS", server: full, l: LDAPSettings{StartTLS: true, TLSSkipVerify: true}, class: "tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runOnce(t, bdiiCheck(tc.l), tc.server.addr, 2*time.Second)
			wantResult(t, r, tc.healthy, tc.class)
			if !strings.Contains(r.Reason, tc.mention) {
				t.Errorf("reason %q does not mention %q", r.Reason, tc.mention)
			}
		})
	}
}

// A stopped slapd still completes TCP handshakes from its listen backlog,
// so only a deadline over the whole exchange turns it into a failure.
func TestLDAPStoppedSlapdTimesOut(t *testing.T) {
	s := startSlapd(t)
	s.load(t, 1, 0)
	wantResult(t, runOnce(t, bdiiCheck(LDAPSettings{}), s.addr, 2*time.Second), true, "ok")
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer s.cmd.Process.Signal(syscall.SIGCONT)
	// kill(2) returns before every thread of slapd has stopped.
	for deadline := time.Now().Add(10 * time.Second); processState(s.cmd.Process.Pid) != "T"; {
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not stop: state %q", processState(s.cmd.Process.Pid))
		}
		time.Sleep(time.Millisecond)
	}
	const timeout = 500 * time.Millisecond
	start := time.Now()
	r := runOnce(t, bdiiCheck(LDAPSettings{}), s.addr, timeout)
	elapsed := time.Since(start)
	wantResult(t, r, false, "timeout")
	// Generous bound: this proves "no hang", not a latency.
	if elapsed > timeout+3*time.Second {
		t.Errorf("probe of a stopped slapd returned after %s with a %s deadline", elapsed, timeout)
	}
}

func TestLDAPValidate(t *testing.T) {
	for _, l := range []LDAPSettings{
		{Scope: "subtree"},
		{Filter: "objectClass=*"},
		{Base: "not a dn"},
		{BindDN: rootDN},
		{StartTLS: true, LDAPS: true},
		{ExpectEntries: 5, SizeLimit: 2},
		{CAFile: "/etc/ssl/ca.pem"},
	} {
		if err := validate(&config.Check{Type: "ldap", Settings: &l}); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", l)
		}
	}
}

// writeCert makes a self-signed certificate for bdii.example.org and
// 127.0.0.1, usable both as slapd's certificate and as the check's CA file.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bdii.example.org"},
		DNSNames:              []string{"bdii.example.org"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestLDAPTLS(t *testing.T) {
	cert, key := writeCert(t)
	s := startSlapdWith(t, &slapdTLS{cert: cert, key: key})
	s.load(t, 1, 1)
	tests := []struct {
		name    string
		ldaps   bool
		l       LDAPSettings
		healthy bool
		class   string
	}{
		{name: "starttls with CA file and server name", l: LDAPSettings{StartTLS: true, CAFile: cert, TLSServerName: "bdii.example.org"}, healthy: true, class: "ok"},
		{name: "starttls, certificate names the address", l: LDAPSettings{StartTLS: true, CAFile: cert}, healthy: true, class: "ok"},
		{name: "starttls with an unknown CA", l: LDAPSettings{StartTLS: true, TLSServerName: "bdii.example.org"}, class: "tls"},
		{name: "ldaps with CA file", ldaps: true, l: LDAPSettings{LDAPS: true, CAFile: cert, TLSServerName: "bdii.example.org"}, healthy: true, class: "ok"},
		{name: "ldaps with the wrong server name", ldaps: true, l: LDAPSettings{LDAPS: true, CAFile: cert, TLSServerName: "other.example.org"}, class: "tls"},
		{name: "ldaps skipping verification", ldaps: true, l: LDAPSettings{LDAPS: true, TLSSkipVerify: true}, healthy: true, class: "ok"},
		{name: "ldaps against the plain port", l: LDAPSettings{LDAPS: true, TLSSkipVerify: true}, class: "tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := s.addr
			if tc.ldaps {
				addr = s.ldapsAddr
			}
			wantResult(t, runOnce(t, bdiiCheck(tc.l), addr, 2*time.Second), tc.healthy, tc.class)
		})
	}
}
