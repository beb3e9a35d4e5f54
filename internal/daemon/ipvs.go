package daemon

import (
	"log/slog"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// The kernel's IPVS table as parts of a reload: the director, which keeps
// the table and the health behind it, and the IPVS sysctls.

// ipvsPart moves the director to a new config. Without IPVS (a VRRP-only
// director) it refuses any config with services.
type ipvsPart struct{ dir *director.Director }

func (p ipvsPart) Prepare(c *change) (func(), error) {
	if p.dir == nil {
		if len(c.next.Services) > 0 {
			return nil, director.ErrNoIPVS
		}
		return nil, nil
	}
	return p.dir.Prepare(c.next, c.renames)
}

// sysctlsPart sets the kernel settings a config asks for
// (director.Sysctls: expiring flows of removed servers, sloppy_tcp for
// announced services, forwarding for NAT). The kernel may refuse one; lvsd
// runs on and says so, as at start.
type sysctlsPart struct {
	apply func(*config.Config) error
	log   *slog.Logger
	on    bool // only with IPVS: a VRRP-only director leaves them alone
}

func (p *sysctlsPart) set(cfg *config.Config) {
	if !p.on {
		return
	}
	if err := p.apply(cfg); err != nil {
		p.log.Warn("kernel settings", "err", err)
	}
}

func (p *sysctlsPart) Prepare(c *change) (func(), error) {
	return func() { p.set(c.next) }, nil
}
