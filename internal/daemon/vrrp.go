package daemon

import (
	"github.com/lvsd/lvsd/vrrp"
)

// vrrpPart moves VRRP to a new config: instances added, removed or changed
// in place, and the timing thread's real-time priority.
type vrrpPart struct {
	vr *vrrp.Manager
	// checkRT says whether the kernel permits a real-time priority.
	checkRT func(int) error
}

func (p *vrrpPart) Prepare(c *change) (func(), error) {
	applyRT := func() {}
	if prio := c.next.Director.VRRPRTPriority; prio != c.old.Director.VRRPRTPriority {
		if err := p.checkRT(prio); err != nil {
			return nil, rtPriorityError(c.next, err)
		}
		var err error
		if applyRT, err = p.vr.PrepareRTPriority(prio); err != nil {
			return nil, rtPriorityError(c.next, err)
		}
	}
	// Prepare also watches the links newly tracked, so a missing one is
	// refused now; watching more than is tracked changes nothing.
	applyVRRP, err := p.vr.Prepare(c.next.VRRP)
	if err != nil {
		return nil, err
	}
	return func() {
		applyVRRP()
		applyRT()
	}, nil
}
