package config

import (
	"testing"
	"time"
)

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
		port          int
	}{
		{in: "10.0.0.1", want: "10.0.0.1"},
		{in: "10.0.0.1:80", want: "10.0.0.1:80", port: 80},
		{in: "2001:db8::1", want: "2001:db8::1"},
		{in: "[2001:db8::1]:53", want: "[2001:db8::1]:53", port: 53},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1"}, // unmapped, so it is IPv4 everywhere
		{in: "10.0.0.256", err: `invalid address "10.0.0.256"`},
		{in: "fe80::1%eth0", err: `invalid address "fe80::1%eth0"`},
		{in: "10.0.0.1:0", err: `port 0 in address "10.0.0.1:0" out of range 1..65535`},
		{in: "10.0.0.1:65536", err: `port 65536 in address "10.0.0.1:65536" out of range 1..65535`},
		{in: "[2001:db8::1]", err: `invalid address "[2001:db8::1]"`},
		{in: "example.org:80", err: `invalid address "example.org:80"`},
		{in: "", err: `invalid address ""`},
	} {
		var a Addr
		err := a.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || a.String() != tc.want || a.Port != tc.port {
			t.Errorf("%q: got %q port %d err %v, want %q port %d", tc.in, a, a.Port, err, tc.want, tc.port)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "192.0.2.10/24", want: "192.0.2.10/24"}, // host bits kept: it is an address on a subnet
		{in: "192.0.2.10", want: "192.0.2.10/32"},
		{in: "2001:db8::10", want: "2001:db8::10/128"},
		{in: "2001:db8::10/64", want: "2001:db8::10/64"},
		{in: "192.0.2.10/33", err: `invalid prefix "192.0.2.10/33"`},
		{in: "::ffff:192.0.2.10/120", err: `invalid prefix "::ffff:192.0.2.10/120": write IPv4 addresses in dotted form`},
		{in: "vip", err: `invalid address "vip"`},
	} {
		var p Prefix
		err := p.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("%q: got %q err %v, want %q", tc.in, p, err, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "100ms", want: 100 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "0s"},
		{in: "5", err: `invalid duration "5" (want a number with a unit, such as "500ms" or "5s")`},
		{in: "-1s", err: `duration "-1s" must not be negative`},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || d.Duration != tc.want {
			t.Errorf("%q: got %v err %v, want %v", tc.in, d.Duration, err, tc.want)
		}
	}
}
