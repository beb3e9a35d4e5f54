package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
)

// TestCheckExamples runs `lvsd check` on every shipped example: an example
// that does not validate would teach users a broken config.
func TestCheckExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil || len(files) < 5 {
		t.Fatalf("want at least 5 examples, have %d (%v)", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{"check", "-config", file}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), file+": OK\n") || !strings.Contains(stdout.String(), "\nservice ") {
				t.Errorf("summary does not look right:\n%s", stdout.String())
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(`[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "fastest"

  [[service.realserver]]
  address = "10.0.1.2"
  weight = -1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("[[service]]\nname = \"web\"\nvip = \"192.0.2.10\"\nport = 80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring
		stderr     string // exact
		emptyStdio bool
	}{
		{name: "errors", args: []string{"-config", bad}, code: 1, stderr: bad + `:5: service[web].scheduler: invalid value "fastest" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo or ovf)
` + bad + `:9: service[web].realserver[1].weight: -1 out of range 0..65535
2 errors
`},
		{name: "missing file", args: []string{"-config", filepath.Join(dir, "nope.toml")}, code: 1,
			stderr: "read config: open " + filepath.Join(dir, "nope.toml") + ": no such file or directory\n"},
		{name: "ok", args: []string{"-config", good}, code: 0, stdout: "1 service, 0 real servers, 0 health probes, 0 vrrp instances"},
		{name: "eviction guard", args: []string{"-config", good}, code: 0, stdout: "  eviction guard: holds silent failures of more than 50% of a pool or of all servers within 10s, " +
			"for at most 2m0s, while lvsd is short (90% of its file descriptors, 90% of its memory, checks 2s late, a probe without local resources)\n"},
		{name: "quiet", args: []string{"-q", "-config", good}, code: 0, emptyStdio: true},
		{name: "stray argument", args: []string{good}, code: 2, stderr: "lvsd check: unexpected argument \"" + good + "\" (use -config FILE)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCheck(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if tc.stderr != "" && stderr.String() != tc.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			if tc.emptyStdio && stdout.Len()+stderr.Len() > 0 {
				t.Errorf("want no output, got %q %q", stdout.String(), stderr.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v9.9.9-test"
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "lvsd v9.9.9-test (go") {
		t.Errorf("exit %d, output %q %q", code, stdout.String(), stderr.String())
	}
	version = ""
	if v := lvsdVersion(); v == "" {
		t.Error("lvsdVersion is empty without ldflags")
	}
}

// TestCheckDescribesEveryType: `lvsd check` prints one line for a check of
// each registered type, in words its users know. A new type must be added
// to testdata/every-check-type.toml and its line to the .out file.
func TestCheckDescribesEveryType(t *testing.T) {
	const file = "testdata/every-check-type.toml"
	var stdout, stderr bytes.Buffer
	if code := runCheck([]string{"-config", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var got []string
	described := map[string]bool{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "  check ") {
			got = append(got, strings.TrimPrefix(line, "  check "))
			typ, _, _ := strings.Cut(strings.TrimPrefix(line, "  check "), " ")
			described[typ] = true
		}
	}
	for _, typ := range config.CheckTypes() {
		if !described[typ] {
			t.Errorf("%s has no %s check", file, typ)
		}
	}
	want, err := os.ReadFile("testdata/every-check-type.out")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := strings.Join(got, "\n"), strings.TrimRight(string(want), "\n"); g != w {
		t.Errorf("check lines differ\n--- got\n%s\n--- want\n%s", g, w)
	}
}

// The active-active example is two lvsd configs that must be twins (the
// same real servers in the same order, or the directors hash connections
// differently) and carry no warning, and BIRD configs BIRD must accept.
func TestActiveActiveExample(t *testing.T) {
	dir := "../../examples/active-active"
	var services []string
	for _, f := range []string{"director-a.toml", "director-b.toml"} {
		var stdout, stderr bytes.Buffer
		if code := dispatch([]string{"check", "-config", filepath.Join(dir, f)}, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Errorf("%s: exit %d, stderr:\n%s", f, code, stderr.String())
		}
		out := stdout.String()
		services = append(services, out[strings.Index(out, "\nservice "):])
	}
	if services[0] != services[1] {
		t.Errorf("the directors' services differ:\n%s\n---\n%s", services[0], services[1])
	}
	bird, err := exec.LookPath("bird")
	if err != nil {
		t.Skip("bird not installed (make deps installs bird2): BIRD configs not parsed")
	}
	confs, _ := filepath.Glob(filepath.Join(dir, "bird-*.conf"))
	if len(confs) != 3 {
		t.Fatalf("want 3 BIRD configs, have %v", confs)
	}
	for _, c := range confs {
		if out, err := exec.Command(bird, "-p", "-c", c).CombinedOutput(); err != nil {
			t.Errorf("bird -p -c %s: %v\n%s", c, err, out)
		}
	}
}
