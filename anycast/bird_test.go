package anycast

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The testdata files are BIRD 2.0.12's replies as captured on its control
// socket (greeting included), from a lab of namespaces: a router and two
// directors, one director unplugged, and a third BIRD with long protocol
// names and `timeformat protocol iso long`.

// fakeBIRD serves the captured replies on a unix socket, one file per
// command, as BIRD would: greeting, read one line, reply, close.
func fakeBIRD(t *testing.T, replies map[string]string) BIRD {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bird.ctl")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				c.Write([]byte("0001 BIRD 2.0.12 ready.\n"))
				cmd, err := r.ReadString('\n')
				if err != nil {
					return
				}
				file, ok := replies[strings.TrimSpace(cmd)]
				if !ok {
					c.Write([]byte("9001 syntax error, unexpected CF_SYM_UNDEFINED\n"))
					return
				}
				data, err := os.ReadFile(filepath.Join("testdata", file))
				if err != nil {
					t.Error(err)
					return
				}
				_, reply, _ := strings.Cut(string(data), "\n") // the file starts with the greeting
				c.Write([]byte(reply))
			}()
		}
	}()
	return BIRD{Socket: sock}
}

func TestBIRDProtocols(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		file string
		want []Protocol
	}{
		{"protocols-director.txt", []Protocol{
			{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "04:41:24.013"},
			{Name: "lvsd_vips", Proto: "Direct", Table: "---", State: "up", Since: "04:41:24.013"},
			{Name: "bfd1", Proto: "BFD", Table: "---", State: "up", Since: "04:41:24.013"},
			{Name: "router1", Proto: "BGP", Table: "---", State: "up", Since: "04:41:28.513", Info: "Established"},
		}},
		{"protocols-router.txt", []Protocol{
			{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "04:41:24.019"},
			{Name: "kernel1", Proto: "Kernel", Table: "master4", State: "up", Since: "04:41:24.019"},
			{Name: "bfd1", Proto: "BFD", Table: "---", State: "up", Since: "04:41:24.019"},
			{Name: "d1", Proto: "BGP", Table: "---", State: "up", Since: "04:41:28.513", Info: "Established"},
			{Name: "d2", Proto: "BGP", Table: "---", State: "start", Since: "04:41:36.460", Info: "Active Socket: No route to host"},
		}},
		{"protocols-long-names.txt", []Protocol{
			{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "2026-11-30 04:47:57"},
			{Name: "lvsd_vips", Proto: "Direct", Table: "---", State: "up", Since: "2026-11-30 04:47:57"},
			{Name: "router_backup_long_name", Proto: "BGP", Table: "---", State: "start", Since: "2026-11-30 04:47:57", Info: "Active"},
			{Name: "to_router", Proto: "BGP", Table: "---", State: "start", Since: "2026-11-30 04:47:57", Info: "Active"},
		}},
	} {
		b := fakeBIRD(t, map[string]string{"show protocols": tc.file})
		got, err := b.Protocols(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.file, got, tc.want)
		}
	}
	p := Protocol{Proto: "BGP", Info: "Active Socket: No route to host"}
	if p.BGPState() != "Active" || p.Established() {
		t.Errorf("BGPState of %+v = %q", p, p.BGPState())
	}
	if (Protocol{Proto: "Direct", Info: "Established"}).BGPState() != "" {
		t.Error("a Direct protocol has a BGP state")
	}
}

func TestBIRDExported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := fakeBIRD(t, map[string]string{
		"show route export router1": "route-export-three.txt",
		"show route export one":     "route-export.txt",
		"show route export none":    "route-export-none.txt",
		"show route export down":    "error-no-valid-tables.txt",
	})
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for proto, want := range map[string][]netip.Prefix{
		"router1": pfx("192.0.2.11/32", "198.51.100.7/32", "192.0.2.10/32"),
		"one":     pfx("192.0.2.10/32"),
		"none":    nil,
		"down":    nil, // a session whose channel is not up exports nothing
	} {
		got, err := b.Exported(ctx, proto)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Exported(%s) = %v, %v; want %v", proto, got, err, want)
		}
	}
	_, err := b.Exported(ctx, "nosuch")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 9001 || !strings.Contains(re.Msg, "syntax error") {
		t.Errorf("unknown protocol: err = %v, want BIRD's 9001", err)
	}
	if _, err := b.Exported(ctx, "x\nshow status"); err == nil {
		t.Error("a name with a newline reached the socket")
	}
}

func TestBIRDReplyErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := (BIRD{Socket: filepath.Join(t.TempDir(), "absent.ctl")}).Protocols(ctx); err == nil {
		t.Error("no socket: no error")
	}
	b := fakeBIRD(t, map[string]string{"show protocols": "error-syntax.txt"})
	_, err := b.Protocols(ctx)
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 9001 {
		t.Errorf("err = %v, want a 9001 ReplyError", err)
	}
	for _, bad := range []string{"1002-x\n", "xyzw hello\n0000 \n", " orphan\n", "12\n"} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readReply(%q): no error", bad)
		}
	}
}

// A BIRD that accepts and then says nothing must not hang a status call.
func TestBIRDSilentSocketHonoursContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bird.ctl")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := (BIRD{Socket: sock}).Protocols(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("silent BIRD: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Protocols still blocked 10 s after its context ended")
	}
}
