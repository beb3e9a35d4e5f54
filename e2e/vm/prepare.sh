#!/usr/bin/env bash
# prepare.sh builds what run.sh boots: Debian's stock kernel (which ships the
# ip_vs modules our host kernel lacks) and a tiny busybox initramfs that loads
# those modules and hands over to the host's own root filesystem over 9p.
#
# Idempotent: everything lives in $REPO/.cache/vm and is rebuilt only when the
# kernel package or this script changes. Works on a fresh Debian machine: what
# is missing is installed with apt-get.
set -euo pipefail

# Everything runs from main, parsed in full before it starts: bash reads a
# script as it executes, so editing a running one would otherwise break it.
main() {

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${LVSD_VM_CACHE:-$repo/.cache/vm}
mkdir -p "$cache"
# Several run.sh may start at once: one builds, the others wait for it.
exec 9>"$cache/.lock"
flock 9

log() { echo "prepare.sh: $*" >&2; }

here=$(dirname "${BASH_SOURCE[0]}")
scripts_hash=$(cat "${BASH_SOURCE[0]}" "$here/init" | sha256sum | cut -c1-16)

# --quick (used by run.sh): a cache built by these same scripts is good
# enough; skip asking apt whether Debian has published a newer kernel.
if [ "${1:-}" = --quick ] && [ -f "$cache/kernel" ] && [ -f "$cache/initrd" ] &&
	[ "$(awk '{print $3}' "$cache/stamp" 2>/dev/null)" = "$scripts_hash" ]; then
	exit 0
fi
die() { log "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		die "need root to run: $*"
	fi
}

apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return 0
	log "apt-get update"
	as_root apt-get update -qq >&2
	apt_updated=1
}

# Host tools: command -> Debian package. ipvsadm is here because the e2e
# tests drive the kernel table with it for comparison and set-up.
declare -A need=(
	[qemu-system-x86_64]=qemu-system-x86
	[busybox]=busybox-static
	[cpio]=cpio
	[depmod]=kmod
	[xz]=xz-utils
	[zstd]=zstd
	[ip]=iproute2
	[ipvsadm]=ipvsadm
	[curl]=curl
)
missing=()
for cmd in "${!need[@]}"; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
done
# A dynamically linked busybox cannot run in the initramfs: it has no libc.
if [ ! -e /bin/busybox ] || LC_ALL=C ldd /bin/busybox >/dev/null 2>&1; then
	dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
fi
if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	log "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
export PATH=$PATH:/usr/sbin:/sbin

# Which kernel: the package linux-image-amd64 depends on (e.g. linux-image-6.1.0-56-amd64).
image_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(image_pkg || true)
if [ -z "$pkg" ]; then
	apt_update
	pkg=$(image_pkg || true)
fi
[ -n "$pkg" ] || die "cannot resolve the package behind linux-image-amd64 (is a Debian apt source configured?)"
version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')

stamp="$pkg $version $scripts_hash"
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] &&
	[ -f "$cache/kernel" ] && [ -f "$cache/initrd" ]; then
	log "up to date ($pkg $version)"
	exit 0
fi

log "building VM image from $pkg $version"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

deb=$(ls "$cache"/debs/"${pkg}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ] || [[ "$deb" != *"_${version//:/%3a}_"* ]]; then
	rm -rf "$cache/debs"
	mkdir -p "$cache/debs"
	(cd "$cache/debs" && apt-get -o APT::Sandbox::User=root download "$pkg" >&2) || {
		apt_update
		(cd "$cache/debs" && apt-get -o APT::Sandbox::User=root download "$pkg" >&2)
	}
	deb=$(ls "$cache"/debs/"${pkg}"_*.deb | head -1)
fi

dpkg -x "$deb" "$work/kernel"
kver=$(ls "$work/kernel/lib/modules" | head -1)
[ -n "$kver" ] || die "no modules in $deb"
depmod -b "$work/kernel" "$kver"
moddir=$work/kernel/lib/modules/$kver

# Modules to load, in order. Dependencies come from modules.dep, so only the
# ones nothing else pulls in must be named. Missing (or built-in) ones are skipped.
wanted=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	netfs fscache 9pnet 9pnet_virtio 9p
	crc32c_generic libcrc32c nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack
	ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh
	ip_vs_sh ip_vs_mh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_twos
	veth llc stp bridge dummy tunnel4 ip_tunnel ipip tunnel6 ip6_tunnel macvlan 8021q
	nf_nat nf_tables nft_chain_nat nft_ct nf_conntrack_netlink
	x_tables ip_tables ip6_tables iptable_mangle ip6table_mangle iptable_filter xt_mark xt_conntrack xt_ipvs nft_compat
	tun sch_netem bonding
)

# modpath NAME -> path relative to $moddir, from modules.dep ("-" and "_" are equivalent).
declare -A path_of=() deps_of=()
while IFS= read -r line; do
	p=${line%%:*}
	base=${p##*/}
	name=${base%%.ko*}
	name=${name//-/_}
	path_of[$name]=$p
	deps_of[$name]=${line#*:}
done <"$moddir/modules.dep"

declare -A seen=()
order=()
visit() {
	local name=${1//-/_} d dn
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	[ -n "${path_of[$name]:-}" ] || { log "module $name not in this kernel (built in or absent), skipped"; return 0; }
	# modules.dep lists the full dependency closure; visiting each first gives a valid load order.
	for d in ${deps_of[$name]}; do
		dn=${d##*/}
		dn=${dn%%.ko*}
		visit "$dn"
	done
	order+=("$name")
}
for m in "${wanted[@]}"; do visit "$m"; done

initrd=$work/initrd
mkdir -p "$initrd"/{bin,dev,proc,sys,host,lib/modules}
cp "$(readlink -f /bin/busybox)" "$initrd/bin/busybox"
for name in "${order[@]}"; do
	src=$moddir/${path_of[$name]}
	dst=$initrd/lib/modules/$name.ko
	# busybox insmod does not decompress, so store plain .ko files.
	case "$src" in
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) cp "$src" "$dst" ;;
	esac
	echo "$name" >>"$initrd/modules.order"
done
cp "$here/init" "$initrd/init"
chmod 755 "$initrd/init" "$initrd/bin/busybox"
# Uncompressed: under TCG the kernel takes seconds to inflate even a small initramfs.
(cd "$initrd" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initrd.cpio"

# Likewise the kernel: with PVH, qemu boots the bare ELF vmlinux directly,
# skipping both the firmware's real-mode path and the self-decompression
# (together about half the boot time here). Fall back to the bzImage.
vmlinuz=$work/kernel/boot/vmlinuz-$kver
kernel=$vmlinuz
if grep -q '^CONFIG_PVH=y' "$work/kernel/boot/config-$kver" 2>/dev/null; then
	for magic in $'\xfd7zXZ:xz -dc' $'\x28\xb5\x2f\xfd:zstd -qdc' $'\x1f\x8b\x08:gzip -dc'; do
		sig=${magic%%:*} tool=${magic#*:}
		for off in $(LC_ALL=C grep -abo "$sig" "$vmlinuz" | cut -d: -f1 | head -5); do
			tail -c+$((off + 1)) "$vmlinuz" | $tool >"$work/vmlinux" 2>/dev/null || true
			if [ "$(head -c4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				kernel=$work/vmlinux
				break 2
			fi
		done
	done
fi
[ "$kernel" != "$vmlinuz" ] || log "booting the compressed kernel (no PVH or could not extract vmlinux)"

rm -f "$cache/vmlinuz" "$cache/initrd.gz"
mv "$work/initrd.cpio" "$cache/initrd"
mv "$kernel" "$cache/kernel"
echo "$kver" >"$cache/kernel-version"
echo "$stamp" >"$cache/stamp"
log "ready: kernel $kver ($(basename "$kernel")), ${#order[@]} modules -> $cache"
}

main "$@"
exit
