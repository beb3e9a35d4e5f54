package checks

import (
	"context"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// connector opens and closes a TCP connection with the fewest system calls
// the netpoller allows: socket, [bind,] register, connect, getpeername (and
// getsockopt on failure), close. net.Dialer adds address parsing,
// getsockname, two getpeername and TCP_NODELAY per dial, which a
// connect-only check never needs. (Raw system calls, which spare the Go
// scheduler's syscall bookkeeping, made no measurable difference in the VM.)
type connector struct {
	family int
	remote syscall.Sockaddr
	local  syscall.Sockaddr // nil: the kernel chooses
}

func newConnector(remote, local netip.AddrPort) *connector {
	c := &connector{family: syscall.AF_INET, remote: sockaddr(remote)}
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

// connect connects and closes normally (FIN, as keepalived does), returning
// the error of the connect. It returns by the deadline of ctx, or when ctx
// is cancelled, with ctx's error.
func (c *connector) connect(ctx context.Context) error {
	fd, err := syscall.Socket(c.family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_TCP)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	if c.local != nil {
		if err := syscall.Bind(fd, c.local); err != nil {
			syscall.Close(fd)
			return os.NewSyscallError("bind", err)
		}
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
			switch err := syscall.Connect(int(fd), c.remote); err {
			case syscall.EINPROGRESS, syscall.EINTR:
				return false
			case nil:
				return true
			default:
				connErr = os.NewSyscallError("connect", err)
				return true
			}
		}
		// Writable means the handshake is over, or the wakeup was
		// spurious (the poller may still deliver the readiness of the
		// unconnected socket): connected, failed, or wait again.
		if _, err := syscall.Getpeername(int(fd)); err == nil {
			return true
		}
		soErr, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		switch {
		case err != nil:
			connErr = os.NewSyscallError("getsockopt", err)
		case soErr != 0:
			connErr = os.NewSyscallError("connect", syscall.Errno(soErr))
		default:
			return false
		}
		return true
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	return connErr
}
