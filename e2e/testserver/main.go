// testserver is the real server of the end-to-end tests: it says who it is
// over HTTP, and echoes over TCP and UDP so tests can see which real server a
// connection landed on and whether a long-lived connection survived.
//
//	testserver -name rs1 -http :80 -tcp-echo :7 -udp-echo :7
//
// Every listener is optional. HTTP answers "NAME\n" on every path, including
// /healthz. The TCP echo server keeps each connection open until the client
// closes it. On SIGTERM or SIGINT it exits 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	name := flag.String("name", "", "name to answer with (default: hostname)")
	httpAddr := flag.String("http", "", "HTTP listen address")
	tcpAddr := flag.String("tcp-echo", "", "TCP echo listen address")
	udpAddr := flag.String("udp-echo", "", "UDP echo listen address")
	flag.Parse()
	if *name == "" {
		*name, _ = os.Hostname()
	}
	if *httpAddr == "" && *tcpAddr == "" && *udpAddr == "" {
		log.Fatal("testserver: nothing to serve: give -http, -tcp-echo or -udp-echo")
	}
	log.SetPrefix("testserver " + *name + ": ")

	errs := make(chan error, 3)
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("http on %s", ln.Addr())
		go func() { errs <- serveHTTP(ln, *name) }()
	}
	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("tcp echo on %s", ln.Addr())
		go func() { errs <- serveTCPEcho(ln) }()
	}
	if *udpAddr != "" {
		pc, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("udp echo on %s", pc.LocalAddr())
		go func() { errs <- serveUDPEcho(pc) }()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Printf("%v: exiting", sig)
	case err := <-errs:
		log.Fatal(err)
	}
}

func serveHTTP(ln net.Listener, name string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, name)
	})
	return (&http.Server{Handler: h}).Serve(ln)
}

func serveTCPEcho(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			io.Copy(conn, conn)
		}()
	}
}

func serveUDPEcho(pc net.PacketConn) error {
	buf := make([]byte, 65536)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo(buf[:n], addr); err != nil {
			log.Printf("udp echo to %s: %v", addr, err)
		}
	}
}
