package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// staticVIPs holds the service VIPs no VRRP instance covers and no service
// announces (director.StaticVIPs) on director.interface, all the time, as
// on a single director. It remembers what it holds, not what the config
// said: an address the kernel refused is added again at the next reload,
// and one it would not remove is removed again.
type staticVIPs struct {
	addrs vrrp.AddressManager
	log   *slog.Logger

	mu   sync.Mutex
	held map[netip.Prefix]heldVIP
}

type heldVIP struct {
	iface string
	// failed: the add that should have put it there failed (for it or
	// for another VIP of the same call), so it may be missing.
	failed bool
}

// staticWanted is what cfg asks to hold, and where.
func staticWanted(cfg *config.Config) (iface string, vips []netip.Prefix, err error) {
	if cfg == nil {
		return "", nil, nil
	}
	vips = director.StaticVIPs(cfg)
	if len(vips) > 0 && cfg.Director.Interface == "" {
		return "", nil, errors.New("director.interface is needed to hold service VIPs that no VRRP instance covers")
	}
	return cfg.Director.Interface, vips, nil
}

// start adds what cfg asks for; an address the kernel refuses stops lvsd
// from starting.
func (v *staticVIPs) start(ctx context.Context, cfg *config.Config) error {
	iface, vips, err := staticWanted(cfg)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.held == nil {
		v.held = map[netip.Prefix]heldVIP{}
	}
	if len(vips) == 0 {
		return nil
	}
	if err := v.addrs.AddVIPs(ctx, iface, vips); err != nil {
		return err
	}
	for _, p := range vips {
		v.held[p] = heldVIP{iface: iface}
	}
	return nil
}

// leaving is the reload part that removes the VIPs next no longer holds
// statically (among them those a VRRP instance of next takes over).
func (v *staticVIPs) leaving() preparer {
	return prepareFunc(func(c *change) (func(), error) {
		iface, want, err := staticWanted(c.next)
		if err != nil {
			return nil, err
		}
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = v.remove(ctx, func(p netip.Prefix, on string) bool { return on != iface || !slices.Contains(want, p) })
		}, nil
	})
}

// arriving is the reload part that adds the VIPs next holds statically
// (among them those a VRRP instance of old released).
func (v *staticVIPs) arriving() preparer {
	return prepareFunc(func(c *change) (func(), error) {
		iface, want, err := staticWanted(c.next)
		if err != nil {
			return nil, err
		}
		return func() {
			v.mu.Lock()
			defer v.mu.Unlock()
			var add []netip.Prefix
			for _, p := range want {
				if h, ok := v.held[p]; !ok || h.failed {
					add = append(add, p)
				}
			}
			if len(add) == 0 {
				return
			}
			if v.held == nil { // a reload (SIGHUP) before Run started
				v.held = map[netip.Prefix]heldVIP{}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := v.addrs.AddVIPs(ctx, iface, add)
			if err != nil {
				// Adding an address the interface has is no error, so
				// the next reload adds them all again.
				v.log.Error("adding static VIPs", "interface", iface, "err", err)
			}
			for _, p := range add {
				v.held[p] = heldVIP{iface: iface, failed: err != nil}
			}
		}, nil
	})
}

// remove takes away every held VIP gone says is gone. A VIP the kernel
// would not remove stays held, and the next reload tries again.
func (v *staticVIPs) remove(ctx context.Context, gone func(p netip.Prefix, iface string) bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	byIface := map[string][]netip.Prefix{}
	for p, h := range v.held {
		if gone(p, h.iface) {
			byIface[h.iface] = append(byIface[h.iface], p)
		}
	}
	var errs []error
	for iface, vips := range byIface {
		slices.SortFunc(vips, netip.Prefix.Compare)
		if err := v.addrs.RemoveVIPs(ctx, iface, vips); err != nil {
			v.log.Error("removing static VIPs", "interface", iface, "err", err)
			errs = append(errs, err)
			continue
		}
		for _, p := range vips {
			delete(v.held, p)
		}
	}
	return errors.Join(errs...)
}

// release removes every VIP held (on_exit = "flush").
func (v *staticVIPs) release(ctx context.Context) error {
	return v.remove(ctx, func(netip.Prefix, string) bool { return true })
}

// prepareFunc makes a function a preparer.
type prepareFunc func(c *change) (func(), error)

func (f prepareFunc) Prepare(c *change) (func(), error) { return f(c) }
