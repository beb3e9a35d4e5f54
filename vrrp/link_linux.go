package vrrp

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// NetlinkLinks watches links with an rtnetlink subscription, so a link
// going down is seen at once rather than at the next poll.
type NetlinkLinks struct{}

// Watch implements LinkWatcher. A missing interface counts as down.
func (NetlinkLinks) Watch(ctx context.Context, ifaces []string, report func(string, bool)) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(error) {},
	}); err != nil {
		close(done)
		return fmt.Errorf("link subscribe: %w", err)
	}
	wanted := map[string]bool{}
	for _, name := range ifaces {
		wanted[name] = true
		l, err := netlink.LinkByName(name)
		report(name, err == nil && linkUp(l.Attrs()))
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				a := u.Link.Attrs()
				if wanted[a.Name] {
					report(a.Name, u.Header.Type != 17 /* RTM_DELLINK */ && linkUp(a))
				}
			}
		}
	}()
	return nil
}

// linkUp is administratively up with carrier: what VRRP needs to be heard.
func linkUp(a *netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}
