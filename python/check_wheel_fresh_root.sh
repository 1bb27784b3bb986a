#!/usr/bin/env bash
# python/check_wheel_fresh_root.sh WHEEL: proves that the self-contained wheel (python/make_wheel.sh)
# installs and answers on a host without Debian's -dev packages or a compiler. Makes a minimal
# Debian 12 root (mmdebstrap, variant minbase) with only python3, python3-venv and python3-numpy
# (what a shared Python host has), creates a virtual environment there, installs the wheel from
# the file alone (pip --no-index: nothing downloaded), and classifies a real image with the
# bundled model; then checks that the root holds no -dev package and no compiler.
#   sudo python/check_wheel_fresh_root.sh dist/dermal-0.1.0-cp311-cp311-linux_x86_64.whl [--keep]
set -euo pipefail
wheel="$(realpath "${1:?usage: check_wheel_fresh_root.sh WHEEL [--keep]}")"
keep="${2:-}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
image="$(cd "$repo/../shared" && pwd)/data/ham10000/images/ISIC_0024306.jpg"
[ "$(id -u)" -eq 0 ] || { echo "check_wheel_fresh_root: needs root (mmdebstrap, chroot)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
root="$(mktemp -d /var/tmp/dermal-wheel-root.XXXXXX)"
rmdir "$root"
cleanup() {
  umount -l "$root/proc" 2>/dev/null || true
  [ "$keep" = "--keep" ] || rm -rf --one-file-system "$root"
}
trap cleanup EXIT
start=$(date +%s)
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python3-numpy bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" "deb http://deb.debian.org/debian-security bookworm-security main"
echo "root made in $(( $(date +%s) - start )) s: $(du -sm "$root" | cut -f1) MB" >&2
mount -t proc proc "$root/proc"
cp "$wheel" "$image" "$root/tmp/"
chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -euc "
  if dpkg -l | awk '\$1 == \"ii\" {print \$2}' | grep -E -- '-dev(:|\$)|^(gcc|gcc-12|g\+\+|g\+\+-12|cpp|cpp-12|clang|cmake)(:|\$)'; then
    echo 'the root has -dev packages or a compiler' >&2; exit 1
  fi
  python3 -m venv --system-site-packages /opt/venv
  /opt/venv/bin/pip install --no-index --quiet /tmp/$(basename "$wheel")
  cd /tmp
  /opt/venv/bin/python - <<'PY'
import time
t = time.time()
import dermal
m = dermal.Model()
load = time.time() - t
r = m.predict(open('/tmp/ISIC_0024306.jpg', 'rb').read())
h = m.explain(open('/tmp/ISIC_0024306.jpg', 'rb').read())
print('dermal %s in a fresh venv: %s %.3f (lesion check passed: %s), heatmap %s, import + load %.1f s, RSS %.0f MB'
      % (dermal.__version__, r.top[0]['label'], r.top[0]['probability'], r.lesion_check['passed'], h.shape, load,
         dermal.memory_status()['rss_mb']))
assert r.top[0]['label'] == 'nv' and h.shape == (150, 200)
PY
"
echo "wheel check passed in $(( $(date +%s) - start )) s" >&2
