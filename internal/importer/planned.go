package importer

import "fmt"

// feature is something an imported config may need that lvsd does not have
// yet. This table is the one place to switch a mapping on once the feature
// is in main: set have, and the importers emit it instead of a note.
type feature struct {
	what  string // "ping checks"
	issue int    // where it is being built
	have  bool
}

var (
	featPing        = &feature{what: "ping checks (type = \"ping\")", issue: 12, have: true}
	featUDP         = &feature{what: "udp checks (type = \"udp\")", issue: 12, have: true}
	featAuthHMAC    = &feature{what: "VRRP authentication ([vrrp.auth])", issue: 13, have: true}
	featTrackWeight = &feature{what: "weighted tracking (a tracked interface or script that moves the priority)", issue: 14, have: true}
	featTrackScript = &feature{what: "tracked scripts (vrrp_script/track_script)", issue: 14, have: true}
	featSyncGroup   = &feature{what: "VRRP sync groups", issue: 14, have: true}
)

// lacks is the reason for a Dropped note about a planned feature.
func (f *feature) lacks() string {
	return fmt.Sprintf("lvsd lacks %s (planned: issue %d)", f.what, f.issue)
}
