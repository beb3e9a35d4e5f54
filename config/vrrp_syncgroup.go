package config

import "strconv"

// SyncGroup is keepalived's vrrp_sync_group: its instances change state
// together, so a NAT director's outside VIP and the real servers' inside
// gateway VIP never end up on different nodes.
type SyncGroup struct {
	Name      string   `toml:"name"`
	Instances []string `toml:"instances"` // at least two [[vrrp]] names
}

// syncGroups checks every [[vrrp_sync_group]] and records each member's
// group in its VRRP.SyncGroup.
func (l *loader) syncGroups(cfg *Config) {
	at := loc{}.key("vrrp_sync_group")
	names := map[string]int{}
	member := map[string]int{} // instance -> index of its group
	for gi := range cfg.SyncGroups {
		g := &cfg.SyncGroups[gi]
		gat := l.locs[g]
		switch j, dup := names[g.Name]; {
		case g.Name == "":
			l.errorf(gat.key("name"), "required")
		case !validName.MatchString(g.Name):
			l.errorf(gat.key("name"), "invalid name %q (use letters, digits and . _ - : / @)", g.Name)
		case dup:
			l.errorf(gat.key("name"), "duplicate vrrp_sync_group name %q (%s[%d] has it)", g.Name, at.disp(), j+1)
		default:
			names[g.Name] = gi
		}
		if len(g.Instances) < 2 {
			l.errorf(gat.key("instances"), "list at least two [[vrrp]] instances (a group of one syncs nothing)")
		}
		for i, name := range g.Instances {
			el := gat.key("instances").elem(i, strconv.Itoa(i+1))
			var v *VRRP
			for k := range cfg.VRRP {
				if cfg.VRRP[k].Name == name {
					v = &cfg.VRRP[k]
				}
			}
			switch other, taken := member[name]; {
			case v == nil:
				l.errorf(el, "unknown vrrp instance %q", name)
			case taken && other == gi:
				l.errorf(el, "%q is listed twice", name)
			case taken:
				l.errorf(el, "%q is already in %s (an instance belongs to one group)", name, l.locs[&cfg.SyncGroups[other]].disp())
			default:
				member[name] = gi
				v.SyncGroup = g.Name
			}
		}
	}
}
