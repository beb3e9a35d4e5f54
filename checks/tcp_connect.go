package checks

import (
	"context"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// connector opens and closes a TCP connection with the fewest system calls:
// socket, [bind,] connect, and close, plus on the goroutine path the
// netpoller's registration and a getpeername (getsockopt on failure).
// net.Dialer adds address parsing, getsockname, two getpeername and
// TCP_NODELAY per dial, which a connect-only check never needs.
type connector struct {
	family int
	remote []byte           // the sockaddr, as rawConnect takes it
	local  syscall.Sockaddr // nil: the kernel chooses
}

func newConnector(remote, local netip.AddrPort) *connector {
	c := &connector{family: syscall.AF_INET, remote: rawSockaddr(sockaddr(remote))}
	if !remote.Addr().Unmap().Is4() {
		c.family = syscall.AF_INET6
	}
	if local.Addr().IsValid() {
		c.local = sockaddr(local)
	}
	return c
}

func sockaddr(ap netip.AddrPort) syscall.Sockaddr {
	if a := ap.Addr().Unmap(); a.Is4() {
		return &syscall.SockaddrInet4{Addr: a.As4(), Port: int(ap.Port())}
	}
	return &syscall.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// open returns a non-blocking socket, bound to the local address if any.
func (c *connector) open() (int, error) {
	fd, errno := rawSocket(c.family)
	if errno != 0 {
		return -1, os.NewSyscallError("socket", errno)
	}
	if c.local != nil {
		if err := syscall.Bind(fd, c.local); err != nil {
			rawClose(fd)
			return -1, os.NewSyscallError("bind", err)
		}
	}
	return fd, nil
}

// start begins the handshake on fd. done reports that it is already over,
// with err saying how; otherwise fd becomes writable when it is.
func (c *connector) start(fd int) (done bool, err error) {
	switch errno := rawConnect(fd, c.remote); errno {
	case syscall.EINPROGRESS, syscall.EINTR:
		return false, nil
	case 0:
		return true, nil
	default:
		return true, os.NewSyscallError("connect", errno)
	}
}

// outcome reads how the handshake on a writable fd ended. pending reports
// a spurious wakeup: the handshake is still under way.
func outcome(fd int) (pending bool, err error) {
	if _, err := syscall.Getpeername(fd); err == nil {
		return false, nil
	}
	soErr, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	switch {
	case err != nil:
		return false, os.NewSyscallError("getsockopt", err)
	case soErr != 0:
		return false, os.NewSyscallError("connect", syscall.Errno(soErr))
	}
	return true, nil
}

// connect connects and closes normally (FIN, as keepalived does), returning
// the error of the connect. It returns by the deadline of ctx, or when ctx
// is cancelled, with ctx's error.
func (c *connector) connect(ctx context.Context) error {
	fd, err := c.open()
	if err != nil {
		return err
	}
	// os.NewFile registers the non-blocking fd with the netpoller, so the
	// wait below parks this goroutine rather than a thread.
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	// Connect inside Write: Write first forgets readiness the poller saw
	// earlier, which would lose the wakeup of a handshake that finished
	// before it (loopback finishes within connect itself).
	var connErr error
	started := false
	werr := raw.Write(func(fd uintptr) bool {
		if !started {
			started = true
			done, err := c.start(int(fd))
			connErr = err
			return done
		}
		// Writable means the handshake is over, or the wakeup was
		// spurious (the poller may still deliver the readiness of the
		// unconnected socket).
		pending, err := outcome(int(fd))
		connErr = err
		return !pending
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	return connErr
}
