package main

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestServers(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer httpLn.Close()
	go serveHTTP(httpLn, "rs7")

	for _, path := range []string{"/", "/healthz", "/any/thing"} {
		resp, err := http.Get("http://" + httpLn.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "rs7\n" {
			t.Errorf("GET %s = %s %q, want 200 %q", path, resp.Status, body, "rs7\n")
		}
	}

	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go serveTCPEcho(echoLn)
	conn, err := net.Dial("tcp", echoLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// Several exchanges on one connection: it must stay open between them.
	for _, msg := range []string{"one\n", "two\n", "three\n"} {
		conn.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("tcp echo of %q = %q, %v", msg, got, err)
		}
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveUDPEcho(pc)
	uc, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	uc.Write([]byte("ping"))
	buf := make([]byte, 16)
	n, err := uc.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Errorf("udp echo = %q, %v; want %q", buf[:n], err, "ping")
	}
}
