#!/usr/bin/env bash
# Warm predict + Grad-CAM timings and idle RSS of `dermal serve` with a model, on one thread
# (a stand-in for bench/e2e.py when build/bench is not built):
#   tools/train/pretrained/serve_timing.sh MODEL.onnx [N=30] [IMAGE]
# Prints the median of timings_ms (infer, explain, total without PNG encoding and with it) over N
# requests after 3 warm-up ones, and the service's RSS after start-up (idle, model loaded) and
# after the requests.
set -euo pipefail
cd "$(dirname "$0")/../../.."
model=$1
n=${2:-30}
image=${3:-../shared/data/ham10000/images/ISIC_0024306.jpg}
port=$((20000 + RANDOM % 20000))
build/dermal serve --model "$model" --port "$port" --host 127.0.0.1 --threads 1 --lesion-check off --rate-limit-per-s 0 \
  --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
sleep 1
idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
out=$(mktemp)
for i in $(seq $((n + 3))); do
  curl -sf -F image=@"$image" "http://127.0.0.1:$port/api/predict?gradcam=true" >>"$out"
  echo >>"$out"
done
after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
/usr/bin/python3 - "$out" "$idle" "$after" <<'EOF'
import json, statistics, sys
rows = [json.loads(l)["timings_ms"] for l in open(sys.argv[1]) if l.strip()][3:]
med = lambda k: statistics.median(r.get(k, 0.0) for r in rows)
no_png = statistics.median(r["total"] - r.get("encode", 0.0) for r in rows)
print("%d warm requests, 1 thread: infer %.1f ms, explain %.1f ms, predict+Grad-CAM (total without encode) %.1f ms, "
      "total with overlay PNG %.1f ms; RSS idle %.1f MB, after %.1f MB"
      % (len(rows), med("infer"), med("explain"), no_png, med("total"), int(sys.argv[2]) / 1024, int(sys.argv[3]) / 1024))
EOF
rm -f "$out"
