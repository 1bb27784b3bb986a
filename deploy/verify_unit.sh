#!/usr/bin/env bash
# deploy/verify_unit.sh BUILD_DIR: installs BUILD_DIR's dermal into a scratch root and checks
# deploy/dermal.service with `systemd-analyze verify` (a unit whose ExecStart is missing fails
# there, so ExecStart is pointed at the scratch install). Exit 77 (a ctest skip) without systemd.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: verify_unit.sh BUILD_DIR}" && pwd)"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify_unit: systemd-analyze is not installed: skipped" >&2
  exit 77
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
DESTDIR="$scratch" cmake --install "$build" --prefix /opt/dermal >/dev/null
[ -x "$scratch/opt/dermal/bin/dermal" ] || { echo "verify_unit: no bin/dermal installed" >&2; exit 1; }
ls "$scratch"/opt/dermal/share/dermal/models/*.onnx >/dev/null 2>&1 \
  || { echo "verify_unit: the bundled model was not installed" >&2; exit 1; }
sed "s#/opt/dermal/bin/dermal#$scratch/opt/dermal/bin/dermal#" "$repo/deploy/dermal.service" > "$scratch/dermal.service"
out="$(systemd-analyze verify "$scratch/dermal.service" 2>&1)" || { echo "$out" >&2; exit 1; }
# verify prints warnings without failing (an unknown key, a bad value); treat them as failures.
if [ -n "$out" ]; then echo "$out" >&2; exit 1; fi
echo "verify_unit: deploy/dermal.service verified"
