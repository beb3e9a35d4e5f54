#!/usr/bin/env bash
# run.sh runs one command as root inside a qemu VM whose kernel has IPVS
# (Debian's stock kernel, see prepare.sh) and exits with the command's exit code.
#
# The VM sees the host's whole filesystem read-only (so host binaries, the repo
# and bin/ are all there), with fresh tmpfs on /tmp, /run, /var/tmp and /var/log.
# The repo's bin/ is a snapshot taken when run.sh starts.
# The command starts in the caller's working directory with PATH, HOME=/tmp and
# any LVSD_*, E2E_* and GO* debug variables of the caller, plus LVSD_IN_VM=1.
# Its output is streamed to stdout.
set -euo pipefail

# Everything runs from main, parsed in full before it starts: bash reads a
# script as it executes, so editing a running one would otherwise break it.
main() {

usage() {
	cat >&2 <<'USAGE'
usage: e2e/vm/run.sh [-m MB] [-smp N] [-timeout SECONDS] [-e VAR=VALUE]... -- CMD [ARGS...]
  -m        guest memory in MB (default 2048)
  -smp      guest CPUs (default 2)
  -timeout  hard limit for boot + command; the VM is killed after it (default 1800)
  -e        extra environment variable for CMD (repeatable)
Environment: LVSD_VM_OUT=DIR  directory shared read-write with the guest at the
same path (default: a fresh temporary one); CMD may leave results there.
LVSD_VM_APPEND="..."  more kernel arguments (e.g. loglevel=7 lvsd.debug to see the boot).
USAGE
	exit 2
}

mem=2048 smp=2 limit=1800
extra_env=()
while [ $# -gt 0 ]; do
	case "$1" in
	-m) mem=${2:?}; shift 2 ;;
	-smp) smp=${2:?}; shift 2 ;;
	-timeout) limit=${2:?}; shift 2 ;;
	-e) extra_env+=("${2:?}"); shift 2 ;;
	--) shift; break ;;
	-h | -help | --help) usage ;;
	-*) echo "run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LVSD_VM_CACHE:-$repo/.cache/vm}
# The VM mounts the cache by its real path: a checkout whose .cache is a
# symlink (a git worktree sharing one cache) would hand it a dangling one.
cache=$(realpath -m "$cache")

[ "$(id -u)" -eq 0 ] || { echo "run.sh: must run as root (qemu exports / with the caller's rights)" >&2; exit 2; }
# The VM mounts fresh tmpfs over /tmp, /run, /var/tmp and /var/log. A clone
# that lives there (CI may clone anywhere) is exported on its own and mounted
# back at the same path, so tests still find the repo where they expect it.
hidden() { case "$1/" in /tmp/* | /run/* | /var/tmp/* | /var/log/*) return 0 ;; esac; return 1; }
repo_args=() repo_append=
if hidden "$repo"; then
	repo_args=(-virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on,multidevs=remap")
	repo_append="lvsd.repo=$repo"
fi
case "$PWD/" in
"$repo"/*) ;;
*) if hidden "$PWD"; then
	echo "run.sh: working directory $PWD is hidden inside the VM (tmpfs there); run from the repo or elsewhere" >&2
	exit 2
fi ;;
esac

"$here/prepare.sh" --quick
# Leftovers of runs that were killed outright (none lives this long).
find "$cache/runs" -mindepth 1 -maxdepth 1 -mmin +720 -exec rm -rf {} + 2>/dev/null || true

share= keep_share= snap=
cleanup() {
	[ -z "$share" ] || rm -f "$share/rc" "$share/cmd.sh" "$share/booted"
	[ -n "$keep_share" ] || [ -z "$share" ] || rm -rf "$share"
	[ -z "$snap" ] || rm -rf "$snap"
}
trap cleanup EXIT

if [ -n "${LVSD_VM_OUT:-}" ]; then
	mkdir -p "$LVSD_VM_OUT"
	share=$(cd "$LVSD_VM_OUT" && pwd)
	keep_share=1
else
	mkdir -p "$cache/runs"
	share=$(mktemp -d "$cache/runs/run.XXXXXX")
fi
rm -f "$share/rc" "$share/cmd.sh" "$share/booted"

# The VM sees a copy of bin/ taken now. Others rebuild bin/ while tests run,
# and go build rewrites a binary in place: a guest executing it (with its
# pages cached) would run a torn mix of two builds.
if [ -d "$repo/bin" ]; then
	mkdir -p "$cache/runs"
	snap=$(mktemp -d "$cache/runs/bin.XXXXXX")
	# Copy again if a build wrote to bin/ during the copy.
	for _ in 1 2 3 4 5; do
		before=$(stat -c '%n %s %Y' "$repo"/bin/* 2>/dev/null || true)
		rm -rf "${snap:?}"/* && cp -a "$repo/bin/." "$snap/"
		[ "$before" = "$(stat -c '%n %s %Y' "$repo"/bin/* 2>/dev/null || true)" ] && break
		sleep 1
	done
fi

# The command travels as a script in the share: no kernel command-line quoting.
{
	echo "cd $(printf %q "$PWD") || exit 125"
	printf 'export PATH=%q HOME=/tmp TMPDIR=/tmp LVSD_IN_VM=1 LVSD_VM_OUT=%q\n' \
		"$PATH:/usr/sbin:/sbin" "$share"
	while IFS='=' read -r name _; do
		case "$name" in
		LVSD_VM_OUT | LVSD_VM_CACHE) ;;
		LVSD_* | E2E_* | GOTRACEBACK | GODEBUG | GOMAXPROCS | GOFLAGS | TERM | LANG | LC_ALL)
			printf 'export %s=%q\n' "$name" "${!name}" ;;
		esac
	done < <(env)
	for kv in "${extra_env[@]}"; do
		printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
	done
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$share/cmd.sh"

bin_args=()
if [ -n "$snap" ]; then
	bin_args=(-virtfs "local,path=$snap,mount_tag=bin,security_model=none,readonly=on,multidevs=remap")
fi

start=$(date +%s%N)
set +e
timeout -k 10 "$limit" qemu-system-x86_64 \
	-accel tcg -cpu max -m "$mem" -smp "$smp" \
	-display none -vga none -monitor none -serial stdio -no-reboot -nic none \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-kernel "$cache/kernel" -initrd "$cache/initrd" \
	-append "console=ttyS0 quiet loglevel=1 panic=-1 $repo_append lvsd.share=$share ${snap:+lvsd.bin=$repo/bin} ${LVSD_VM_APPEND:-}" \
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$share,mount_tag=out,security_model=none,multidevs=remap" \
	"${repo_args[@]}" "${bin_args[@]}" \
	</dev/null
qemu_rc=$?
set -e
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
elapsed=$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))

if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
	echo "run.sh: FAIL: VM killed after the ${limit}s timeout (raise -timeout?)" >&2
	exit 124
fi
if [ ! -s "$share/rc" ]; then
	echo "run.sh: FAIL: the VM stopped without reporting the command's exit code (qemu exit $qemu_rc); see the console output above" >&2
	exit 125
fi
rc=$(cat "$share/rc")
boot=?
if [ -e "$share/booted" ]; then
	boot_ms=$((($(stat -c %.3Y "$share/booted" | tr -d .) - start / 1000000)))
	boot=$((boot_ms / 1000)).$(printf %03d $((boot_ms % 1000)))
fi
echo "run.sh: command exited $rc; VM ran ${elapsed}s (boot ${boot}s)" >&2
exit "$rc"
}

main "$@"
exit
