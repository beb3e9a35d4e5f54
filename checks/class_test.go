package checks

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

// Every failure class must say whether the server answered: a class in
// neither list would be held by the eviction guard without anyone deciding
// it should be.
func TestEveryClassSaysWhetherTheServerAnswered(t *testing.T) {
	for _, c := range ReasonClasses {
		if c == "ok" {
			continue
		}
		if answered[c] == silent[c] {
			t.Errorf("class %q: answered=%v silent=%v, want exactly one", c, answered[c], silent[c])
		}
	}
	for c := range answered {
		if ReasonClass(c+": x") != c {
			t.Errorf("answered class %q is not in ReasonClasses", c)
		}
	}
	for c := range silent {
		if ReasonClass(c+": x") != c {
			t.Errorf("silent class %q is not in ReasonClasses", c)
		}
	}
	if ServerAnswered("timeout") || ServerAnswered(LocalClass) || ServerAnswered("other") || !ServerAnswered("refused") {
		t.Error("ServerAnswered disagrees with the lists")
	}
}

// A probe lvsd could not even open a socket for says nothing about the
// server: with the process out of file descriptors, TCP and HTTP probes
// fail with class "local", not "connect".
func TestOutOfFileDescriptorsIsLocal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptAndClose(l)
	addr := addrOf(t, l.Addr())
	tcp, err := New(complete(t, &config.Check{Type: "tcp"}), addr)
	if err != nil {
		t.Fatal(err)
	}
	web, err := New(complete(t, &config.Check{Type: "http"}), addr)
	if err != nil {
		t.Fatal(err)
	}
	wantResult(t, runCheck(tcp), true, "ok")

	exhaustFileDescriptors(t)
	wantResult(t, runCheck(tcp), false, LocalClass)
	wantResult(t, runCheck(web), false, LocalClass)
}

func runCheck(c Checker) Result {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Check(ctx)
}

// exhaustFileDescriptors lowers RLIMIT_NOFILE and fills every free
// descriptor below it, until the test ends.
func exhaustFileDescriptors(t *testing.T) {
	t.Helper()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	low := was
	low.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var filler []*os.File
	t.Cleanup(func() {
		for _, f := range filler {
			f.Close()
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	})
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		filler = append(filler, f)
		if len(filler) > 1000 {
			t.Fatal("RLIMIT_NOFILE did not take effect")
		}
	}
}
