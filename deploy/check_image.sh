#!/usr/bin/env bash
# deploy/check_image.sh: proves deploy/Dockerfile on this machine, with no registry.
#
#  1. A local `debian:bookworm-slim` base when there is none: Debian's mmdebstrap makes it the way
#     the official one is made (minbase, merged /usr, no docs/man/locales), podman imports it.
#  2. `podman build` of deploy/Dockerfile from the committed tree (a clean `git archive` of HEAD).
#  3. Runs the image and checks, over HTTP: /v2/health/ready, /health?verbose=1, /api/predict on a
#     real HAM10000 image (an answer with a top class), a 12-megapixel progressive JPEG with
#     Grad-CAM (the costliest upload the default limits accept), and that SIGTERM lets requests in
#     flight finish (a slow Score-CAM request and two photos: each answers 200, the process exits 0).
#  4. Prints the timings (base, build, cold start: `podman run` to the first /api/predict
#     answer), the image size and the container's idle and peak RSS.
#
# Needs root, podman and mmdebstrap (installed from Debian when missing), Debian's mirror for the
# packages, python3 with PIL (./test's set-up installs it) for the test photo, and curl.
#
#   sudo deploy/check_image.sh [--tag dermal:check] [--keep] [--cpus N] [--memory M]
#     --tag T      image name (default dermal:check)
#     --keep       keep the image afterwards (default: remove it; the base image is kept)
#     --cpus N     run the container on N CPUs' worth of time (0.1: about a Render free instance)
#     --memory M   and with a memory limit (512m: Render's free plan)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$repo/../shared" 2>/dev/null && pwd || true)"
tag="dermal:check"
keep=0
run_limits=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --cpus) run_limits+=(--cpus "$2"); shift 2 ;;
    --memory) run_limits+=(--memory "$2"); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "check_image: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "check_image: needs root (podman, mmdebstrap); run it with sudo" >&2
  exit 2
fi
need=()
command -v podman >/dev/null 2>&1 || need+=(podman runc)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "check_image: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work="$(mktemp -d /tmp/dermal-image-check.XXXXXX)"
name="dermal-check-$$"
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  if [ "$keep" -eq 0 ]; then  # the image and its build stage (the base image stays)
    podman rmi -f "$tag" >/dev/null 2>&1 || true
    podman image prune -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
fail() { echo "check_image: FAIL: $*" >&2; [ -f "$work/log" ] && tail -20 "$work/log" >&2; exit 1; }

# Limits the container may ask for: no more open files or processes than this shell has (a
# runtime asks for 1M files by default, which a host without CAP_SYS_RESOURCE refuses).
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=8192:8192")

# 1. The base image.
t=$(now)
if ! podman image exists debian:bookworm-slim; then
  echo "check_image: making debian:bookworm-slim with mmdebstrap" >&2
  mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$work/base.tar"
  podman import --quiet --change 'CMD ["bash"]' "$work/base.tar" docker.io/library/debian:bookworm-slim >/dev/null
  rm -f "$work/base.tar"
fi
base_s=$(since "$t")
# crun (podman's default) refuses hosts whose cgroups are half v1, half v2; runc runs there.
runtime=()
if ! podman run --rm --network host "${limits[@]}" debian:bookworm-slim true >/dev/null 2>&1 \
   && command -v runc >/dev/null 2>&1; then
  runtime=(--runtime runc)
fi

# 2. The image, from the committed tree.
mkdir "$work/tree"
git -C "$repo" archive --format=tar HEAD | tar -x -C "$work/tree"
# One fixed time on every file: podman's layer cache then reuses the build stage across commits
# that leave src/ alone (git archive stamps files with the commit's time).
find "$work/tree" -exec touch -h -d @0 {} +
t=$(now)
podman "${runtime[@]}" build --network host "${limits[@]}" -f "$work/tree/deploy/Dockerfile" -t "$tag" \
  "$work/tree" > "$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fail "podman build"; }
build_s=$(since "$t")
size_mb=$(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.1f", $1 / 1e6}')

# 3. Run it. A free port on the host network (no port mapping: nothing else to set up).
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
ham="$shared/data/ham10000/images/ISIC_0024306.jpg"
[ -f "$ham" ] || ham="$(ls "$shared"/data/ham10000/images/*.jpg | head -1)"
[ -f "$ham" ] || fail "no HAM10000 image under ../shared"
/usr/bin/python3 - "$ham" "$work/phone.jpg" <<'EOF'
import sys
from PIL import Image
# A 12-megapixel "phone photo": the lesion image upscaled to 4032 x 3024, progressive JPEG (its
# decoder holds every coefficient: the costliest upload the default limits accept).
Image.open(sys.argv[1]).convert("RGB").resize((4032, 3024), Image.BICUBIC).save(
    sys.argv[2], quality=90, progressive=True)
EOF
t=$(now)
podman "${runtime[@]}" run -d --name "$name" --network host "${limits[@]}" "${run_limits[@]}" \
  -e PORT="$port" -e THREADS=2 -e REQUEST_TIMEOUT_S=120 "$tag" > /dev/null
code=""
for _ in $(seq 1 600); do  # 000: not listening yet; 503: still loading the model
  code=$(curl -s -o "$work/first.json" -w '%{http_code}' -F "image=@$ham" "$url/api/predict" || true)
  [ "$code" != 000 ] && [ "$code" != 503 ] && break
  sleep 0.05
done
cold_s=$(since "$t")
podman logs "$name" > "$work/log" 2>&1 || true
[ "$code" = 200 ] || fail "/api/predict answered '$code' (000: nothing within 30 s): $(head -c 300 "$work/first.json")"
grep -q '"top"' "$work/first.json" || fail "/api/predict answered without a top class: $(head -c 300 "$work/first.json")"
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
rss_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
sleep 1
idle_mb=$(awk -v k="$(rss_kb VmRSS)" 'BEGIN {printf "%.1f", k / 1024}')

check() {  # check ROUTE EXPECTED_STATUS PATTERN
  local got
  got=$(curl -s -o "$work/answer" -w '%{http_code}' "$url$1")
  [ "$got" = "$2" ] || fail "$1 answered $got, expected $2"
  grep -q "$3" "$work/answer" || fail "$1 answered without '$3': $(head -c 300 "$work/answer")"
  echo "check_image: $1 -> $got"
}
check /v2/health/ready 200 '"ready": *true'
check /v2/health/live 200 'live'
check '/health?verbose=1' 200 '"status": *"ok"'
for _ in 1 2 3 4 5; do
  curl -s -o /dev/null -w '%{time_total}\n' -F "image=@$ham" "$url/api/predict?gradcam=true" >> "$work/warm"
done
warm_ms=$(sort -n "$work/warm" | awk '{v[NR] = $1} END {printf "%.1f", 1000 * v[int((NR + 1) / 2)]}')
for _ in 1 2 3; do
  code=$(curl -s -o "$work/phone.json" -w '%{http_code}' -F "image=@$work/phone.jpg" "$url/api/predict?gradcam=true")
  [ "$code" = 200 ] || fail "the 12 MP photo answered $code: $(head -c 300 "$work/phone.json")"
done
grep -q '"overlay_jpeg"' "$work/phone.json" || fail "the 12 MP photo's answer has no overlay"
echo "check_image: /api/predict?gradcam=true on a 12 MP photo -> 200"
upload_peak_mb=$(awk -v k="$(rss_kb VmHWM)" 'BEGIN {printf "%.1f", k / 1024}')

# Slow requests, three at once: one Score-CAM (one forward pass per channel of the explained
# layer: 10-30 s here, hence REQUEST_TIMEOUT_S=120 above) and two 12 MP photos queued behind it; under --cpus, where Score-CAM would
# exceed REQUEST_TIMEOUT_S, three 12 MP photos.
slow_kind="Score-CAM + 2 x 12 MP" first_query="gradcam=true&method=scorecam" first_file="$ham"
if [ ${#run_limits[@]} -gt 0 ]; then slow_kind="3 x 12 MP" first_query="gradcam=true" first_file="$work/phone.jpg"; fi
slow_requests() {  # in the background (pids in $pids)
  pids=()
  for i in 1 2 3; do
    local file="$work/phone.jpg" query="gradcam=true"
    if [ "$i" = 1 ]; then file="$first_file" query="$first_query"; fi
    curl -s -o "$work/slow$i.json" -w '%{http_code}' -F "image=@$file" "$url/api/predict?$query" \
      > "$work/slow$i.code" &
    pids+=($!)
  done
}
slow_requests
for p in "${pids[@]}"; do wait "$p" || true; done
for i in 1 2 3; do
  [ "$(cat "$work/slow$i.code")" = 200 ] || fail "$slow_kind request $i answered '$(cat "$work/slow$i.code")'"
done
scorecam_peak_mb=$(awk -v k="$(rss_kb VmHWM)" 'BEGIN {printf "%.1f", k / 1024}')

# SIGTERM while slow requests are in flight: each must still be answered.
slow_requests
sleep 0.5
t=$(now)
podman kill --signal TERM "$name" >/dev/null
for p in "${pids[@]}"; do wait "$p" || true; done
exit_code=$(podman wait "$name")
stop_s=$(since "$t")
podman logs "$name" > "$work/log" 2>&1 || true
for i in 1 2 3; do
  [ "$(cat "$work/slow$i.code")" = 200 ] || fail "request $i in flight at SIGTERM answered '$(cat "$work/slow$i.code")'"
done
grep -q 'event=draining' "$work/log" || fail "no event=draining in the log after SIGTERM"
[ "$exit_code" = 0 ] || fail "the container exited with $exit_code after SIGTERM"
echo "check_image: SIGTERM with $slow_kind in flight -> all 200, exit 0 after ${stop_s} s"

echo "check_image: PASS"
printf '  %-34s %s\n' "base image (made or found)" "${base_s} s" \
  "image build" "${build_s} s" \
  "image size" "${size_mb} MB (uncompressed)" \
  "cold start (run -> first answer)" "${cold_s} s" \
  "idle RSS after the first answer" "${idle_mb} MB" \
  "peak RSS after the 12 MP photos" "${upload_peak_mb} MB" \
  "peak RSS after $slow_kind" "${scorecam_peak_mb} MB" \
  "warm /api/predict, Grad-CAM, median" "${warm_ms} ms (HAM10000 image, client side)" \
  "runtime" "$( [ ${#runtime[@]} -gt 0 ] && echo runc || echo podman default)" \
  "run limits" "${run_limits[*]:-none}"
