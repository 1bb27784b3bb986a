#!/usr/bin/env bash
# tools/fresh_machine_check.sh: proves the README's two commands on a new Debian 12 machine.
#
# Makes a minimal Debian 12 root with Debian's mmdebstrap (variant minbase: what a
# debian:bookworm-slim image has, no compiler, no Python, no Node), puts a clean clone of this
# repository's HEAD at /work/main in it and ../shared, read-only, at /work/shared (as CI lays
# them), then runs, inside it, exactly what a new user types:
#   ./run --version               set-up (tools/setup.sh) and the Release build of dermal
#   ./run predict IMAGE           one answer from the bundled model
#   ./test                        the whole test suite, both builds
# It prints the elapsed time of each step and the test counts of every ctest entry, so they can
# be compared with a developer machine's (a test skipped for a missing package shows there).
#
# Needs root (chroot, mounts) and Debian's package mirror (plus npm's registry for the tests that
# use npm); nothing else is downloaded. Only committed work is checked: commit first.
#
#   sudo tools/fresh_machine_check.sh [--root DIR] [--keep] [--skip-test]
#     --root DIR    where to make the root (default: a new folder under /var/tmp)
#     --keep        leave the root in place afterwards (default: remove it)
#     --skip-test   stop after ./run (about 5 minutes instead of about 35)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$repo/../shared" && pwd)"
root=""
keep=0
skip_test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --skip-test) skip_test=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "fresh_machine_check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh_machine_check: needs root (mmdebstrap, chroot, mounts); run it with sudo" >&2
  exit 2
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "fresh_machine_check: installing mmdebstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
if [ -z "$root" ]; then
  root="$(mktemp -d /var/tmp/dermal-fresh-root.XXXXXX)"
  rmdir "$root"  # mmdebstrap wants to make it
fi
log_dir="$(mktemp -d /tmp/dermal-fresh-check.XXXXXX)"

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  if [ "$keep" -eq 0 ] && [ -d "$root" ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

step_start=0
step() { step_start=$(date +%s); echo "== $1" >&2; }
step_done() { echo "   $1: $(( $(date +%s) - step_start )) s" >&2; times_report+=("$1: $(( $(date +%s) - step_start )) s"); }
times_report=()

# Runs a command inside the root as a new user's login shell would: a clean environment. The one
# thing carried in is this host's own network trust: where outbound TLS passes a proxy with its
# own certificate authority (NODE_EXTRA_CA_CERTS here), npm in the root must trust it too. A new
# machine on an open network needs nothing of the kind.
extra_ca=()
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${extra_ca[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /work/main && $1"
}

step "mmdebstrap: minimal Debian 12 root at $root"
mmdebstrap --quiet --variant=minbase bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
step_done "make the root"

step "the repository (clean clone of HEAD $(git -C "$repo" rev-parse --short HEAD)) and ../shared"
mkdir -p "$root/work/main" "$root/work/shared"
git clone --quiet --no-hardlinks "$repo" "$root/work/main"
mount --bind "$shared" "$root/work/shared"; mounted+=("$root/work/shared")
mount -o remount,bind,ro "$root/work/shared"
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount -t sysfs sysfs "$root/sys"; mounted+=("$root/sys")
mount --bind /dev "$root/dev"; mounted+=("$root/dev")
mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null && mounted+=("$root/dev/pts") || true
mount -t tmpfs tmpfs "$root/dev/shm"; mounted+=("$root/dev/shm")  # Chromium needs a shared-memory mount
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp -L "$NODE_EXTRA_CA_CERTS" "$root/etc/host-extra-ca.crt"
  extra_ca=(NODE_EXTRA_CA_CERTS=/etc/host-extra-ca.crt)
  echo "   npm in the root trusts this host's NODE_EXTRA_CA_CERTS ($NODE_EXTRA_CA_CERTS)" >&2
fi
step_done "copy"

step "./run --version (set-up + Release build)"
in_root "./run --version" 2>&1 | tee "$log_dir/run.log" >&2
step_done "./run --version"

image=/work/shared/data/ham10000/images/ISIC_0024306.jpg
step "./run predict $image"
in_root "./run predict --top-k 3 $image" 2>&1 | tee -a "$log_dir/run.log" >&2
step_done "./run predict"

status=0
if [ "$skip_test" -eq 0 ]; then
  step "./test (both builds, every test)"
  in_root "./test" >"$log_dir/test.log" 2>&1 || status=$?
  tail -n 40 "$log_dir/test.log" >&2
  step_done "./test"
  echo "== test counts (ctest entries; GoogleTest cases inside each)" >&2
  for build in build build-asan; do
    junit="$root/work/main/$build/ctest-results.xml"
    [ -f "$junit" ] || { echo "   $build: no ctest results" >&2; status=1; continue; }
    python3 - "$junit" "$build" <<'EOF' >&2 || true
import re, sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
for case in suite.iter("testcase"):
    out = "".join(e.text or "" for e in case.iter("system-out"))
    passed = re.findall(r"\[  PASSED  \] (\d+) test", out)
    skipped = re.findall(r"\[  SKIPPED \] (\d+) test", out)
    detail = f"{passed[-1]} passed, {skipped[-1] if skipped else 0} skipped" if passed else ""
    print(f"   {sys.argv[2]:10s} {case.get('name'):18s} {case.get('status'):4s} {case.get('time'):>8s} s  {detail}")
EOF
  done
fi

echo "== fresh machine check: $( [ $status -eq 0 ] && echo passed || echo FAILED ) (logs in $log_dir)" >&2
for t in "${times_report[@]}"; do echo "   $t" >&2; done
exit $status
