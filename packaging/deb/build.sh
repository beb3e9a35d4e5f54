#!/bin/bash
# Builds lvsd_VERSION_amd64.deb with dpkg-deb alone (no debhelper):
#   packaging/deb/build.sh BINARY VERSION OUTDIR
# BINARY is a static lvsd; VERSION is `git describe` (made a Debian version
# here). The man pages are generated from README.md (internal/manpage).
set -euo pipefail
bin=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

# A Debian version starts with a digit: v1.2.3 -> 1.2.3; a bare commit -> 0~git.<hash>.
case $version in
v[0-9]* | [0-9]*) debver=${version#v} ;;
*) debver=0~git.$version ;;
esac
debver=${debver//-/.}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/sbin/lvsd"
install -D -m 0644 "$here/lvsd.toml" "$root/etc/lvsd/lvsd.toml"
mkdir -p "$root/lib/systemd/system"
sed 's|/usr/local/sbin/lvsd|/usr/sbin/lvsd|g' "$top/examples/systemd/lvsd.service" >"$root/lib/systemd/system/lvsd.service"
chmod 0644 "$root/lib/systemd/system/lvsd.service"
install -D -m 0644 "$here/lvsd.bash-completion" "$root/usr/share/bash-completion/completions/lvsd"
install -D -m 0644 "$here/copyright" "$root/usr/share/doc/lvsd/copyright"
install -D -m 0644 "$top/README.md" "$root/usr/share/doc/lvsd/README.md"
gzip -9n "$root/usr/share/doc/lvsd/README.md"
mkdir -p "$root/usr/share/doc/lvsd"
{
	echo "lvsd ($debver) unstable; urgency=medium"
	echo
	echo "  * Built from the lvsd source tree at $version."
	echo
	echo " -- lvsd maintainers <lvsd@example.org>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$root/usr/share/doc/lvsd/changelog.gz"
chmod 0644 "$root/usr/share/doc/lvsd/changelog.gz"

mkdir -p "$root/usr/share/man/man5" "$root/usr/share/man/man8"
man=$(mktemp -d)
(cd "$top" && go run ./packaging/genman -readme README.md -out "$man")
gzip -9n -c "$man/lvsd.toml.5" >"$root/usr/share/man/man5/lvsd.toml.5.gz"
gzip -9n -c "$man/lvsd.8" >"$root/usr/share/man/man8/lvsd.8.gz"
rm -rf "$man"
chmod 0644 "$root"/usr/share/man/man*/*.gz

mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debver/" -e "s/@SIZE@/$size/" "$here/control" >"$root/DEBIAN/control"
echo /etc/lvsd/lvsd.toml >"$root/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 0755 {} +

mkdir -p "$out"
deb="$out/lvsd_${debver}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
