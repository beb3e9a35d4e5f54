package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// Running a Manager: opening each instance, receiving, and delivering
// transitions to the callback and notify.

// Run opens every instance's connection, starts the state machines and
// blocks until ctx ends. Then every master resigns with priority 0 and
// releases its VIPs before Run returns. Update may add, change and remove
// instances meanwhile.
func (m *Manager) Run(ctx context.Context) error {
	m.ops.Lock()
	if m.started {
		m.ops.Unlock()
		return errors.New("vrrp: manager already running")
	}
	m.started = true
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	m.runCtx = runCtx
	// Link states first, so an instance whose link is down starts in Fault.
	if err := m.watchLinks(m.trackedInterfaces()); err != nil {
		m.ops.Unlock()
		return fmt.Errorf("vrrp: watching links: %w", err)
	}
	if err := m.ex.startWaker(m.rtPriority); err != nil {
		m.ops.Unlock()
		return fmt.Errorf("vrrp: timing thread: %w", err)
	}
	m.running = true
	for _, in := range m.instanceList() {
		m.launch(in)
	}
	m.ops.Unlock()

	<-ctx.Done()

	// Resign every master, then let the event loops drain, so the final
	// transitions reach the callback and notify too.
	m.ops.Lock()
	m.running = false
	stopRun()
	ins := m.instanceList()
	for _, in := range ins {
		in.life.stopOpening()
	}
	for _, in := range ins {
		in.life.openers.Wait() // no connection appears after this
	}
	// Every instance resigns at once; one with resources stops them
	// first, so Run waits for them (each stop is bounded by its timeout).
	var resigned sync.WaitGroup
	for _, in := range ins {
		resigned.Add(1)
		go func() {
			defer resigned.Done()
			in.shutdownWait("lvsd stopping", in.stopBound()+time.Second)
		}()
	}
	resigned.Wait()
	for _, in := range ins {
		in.closeConn()
		in.stopScripts()
	}
	for _, in := range ins {
		in.work.close() // the VIPs are gone when Run returns
		in.ops.close()
		in.events.close()
		m.ex.unregister(in)
	}
	m.ex.stopWaker()
	m.ops.Unlock()
	m.wg.Wait()
	return nil
}

// launch starts one instance of a running Manager (m.ops held): its event
// loop, its connection (or, when that cannot open yet, Fault and a retry),
// then its state machine.
func (m *Manager) launch(in *instance) {
	in.life.launched = true
	in.exec = m.exec
	in.work = newWorker(in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		in.work.run()
	}()
	in.ops = newOpRunner(in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		in.ops.run()
	}()
	m.ex.register(in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if in.life.after != nil {
			<-in.life.after
		}
		m.eventLoop(in)
	}()
	openCtx, stopOpening := context.WithCancel(m.runCtx)
	in.life.stopOpening = stopOpening
	if err := m.open(in); err != nil {
		// At boot the address may not be there yet (an IPv6 link-local
		// one is tentative for a while): wait in Fault, not exit.
		m.log.Warn("vrrp: cannot send adverts yet; retrying", "instance", in.name, "err", err)
		in.setFault(faultNoSocket, true)
		m.wg.Add(1)
		in.life.openers.Add(1)
		go func() {
			defer m.wg.Done()
			defer in.life.openers.Done()
			m.openWhenReady(openCtx, in, err)
		}()
	}
	in.start()
	m.startScripts(in)
}

func (m *Manager) instanceList() []*instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.instances)
}

// faultNoSocket is the fault of an instance that cannot send yet.
const faultNoSocket = "no address or socket to send adverts"

// open finds the instance's source address (unless configured), opens its
// connection and starts receiving.
func (m *Manager) open(in *instance) error {
	c := in.life.configured
	src := c.source
	if !src.IsValid() {
		var err error
		if src, err = primaryAddress(c.iface, c.v4()); err != nil {
			return err
		}
	}
	conn, err := m.opts.Transport.Open(c.iface, src, c.multicast())
	if err != nil {
		return err
	}
	in.opened(src, conn)
	m.wg.Add(1)
	in.life.receivers.Add(1)
	go func() {
		defer m.wg.Done()
		defer in.life.receivers.Done()
		m.receiveLoop(in, conn)
	}()
	return nil
}

// openWhenReady retries open twice a second until it works or ctx ends,
// logging only when the reason changes.
func (m *Manager) openWhenReady(ctx context.Context, in *instance, last error) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		err := m.open(in)
		if err == nil {
			m.log.Info("vrrp: sending adverts now", "instance", in.name, "source", in.source())
			in.setFault(faultNoSocket, false)
			return
		}
		if err.Error() != last.Error() {
			m.log.Warn("vrrp: cannot send adverts yet; retrying", "instance", in.name, "err", err)
			last = err
		}
	}
}

func (m *Manager) receiveLoop(in *instance, conn Conn) {
	for {
		p, err := conn.Receive()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			in.met.drop("receive_error")
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		in.handle(p)
	}
}

// eventLoop delivers one instance's transitions to the callback and the
// notify command, in order.
func (m *Manager) eventLoop(in *instance) {
	defer close(in.life.eventsDone)
	for {
		c, ok := in.events.pop()
		if !ok {
			return
		}
		if m.opts.OnStateChange != nil {
			m.opts.OnStateChange(c)
		}
		if argv, _ := in.notifyCommand(); len(argv) > 0 {
			m.runNotify(in, c)
		}
	}
}

// runNotify runs the notify argv with instance, state and priority
// appended, without a shell, killed after notify_timeout.
func (m *Manager) runNotify(in *instance, c StateChange) {
	notify, timeout := in.notifyCommand()
	if len(notify) == 0 {
		return // a reload removed it
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(slices.Clone(notify), c.Instance, c.To.String(), strconv.Itoa(c.Priority))
	// A group of its own, killed on the timeout with what it started; a
	// daemon it leaves running does not hold the next notify back.
	if res := m.exec(ctx, argv, proc.RunOptions{}); res.Err != nil {
		m.log.Warn("vrrp: notify failed", "instance", c.Instance, "state", c.To.String(), "err", res.String())
	}
}
