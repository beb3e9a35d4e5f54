// Package anycast makes lvsd directors active-active: each director's BIRD
// announces the VIPs of the services with announce = true to the site's
// routers over BGP, the routers spread flows over the directors with ECMP,
// and the directors pick real servers with a consistent hash (mh), so a
// flow the routers move to another director keeps its real server.
//
// # How lvsd tells BIRD
//
// lvsd owns a TUN device (announce.device, default "lvsd-anycast") that it
// creates at start and never makes persistent, and puts each VIP it
// announces on it as a /32 or /128 address. BIRD's `protocol direct` on
// that device turns the addresses into routes, and the BGP export filter
// sends them to the routers. To announce, lvsd adds an address; to
// withdraw, it removes it. The addresses are also what makes the VIP local,
// so IPVS sees its traffic exactly while it is announced.
//
// When lvsd exits, whether it stops, is killed or crashes, the kernel
// closes its descriptor and deletes the device with its addresses; BIRD
// learns it over netlink and withdraws at once. No lvsd code has to run,
// so the crash bound is BIRD's reaction (measured here: 30 ms from SIGKILL
// to the router's kernel route losing the next hop). If the whole director
// is lost (power, cable, kernel), BFD between BIRD and the router bounds
// the loss: interval × multiplier, 300 ms with the example's 100 ms × 3;
// without BFD, the BGP hold time.
//
// The alternative, a generated include file of `protocol static` routes
// plus `birdc configure`, was weighed and rejected: after a crash of lvsd
// the file stays and BIRD keeps announcing until someone reconfigures it
// (no bound at all without a watchdog of its own); every change reparses
// BIRD's whole configuration; and lvsd would need to write into BIRD's
// configuration tree. With the device, BIRD's configuration is static and
// written once by the operator, and what is announced can be read with
// `ip addr show dev lvsd-anycast` and `birdc show route protocol ...`.
//
// # What decides
//
// Decide is pure: a VIP is announced while every service on it is ready
// (the director's quorum, and the kernel holding the pool: director.Ready)
// and every VRRP instance in announce.track_vrrp is backup or master. The
// Announcer runs it after every director pass, VRRP transition and reload,
// and applies the result to the device.
//
// # What it reports
//
// Per VIP: announced or not, why, and since when (Status, VIPs, the
// lvsd_announce_* metrics). BIRD's BGP sessions and the routes each
// exports are read from BIRD's control socket (announce.bird_socket) when
// asked, by status and at scrape time (BIRD, Sessions, lvsd_bgp_*).
package anycast
