#!/usr/bin/env bash
# The GPU session: train several recipes side by side on one GPU, each in the same wall-clock
# budget, then pack their weights and logs into OUT (split in 15 MB parts, the most a file may
# be to come back from the GPU machine). Usage: tools/train/gpu_runs.sh SECONDS OUT [PYTHON]
set -uo pipefail
seconds=$1; out=$2; py=${3:-python3}
cd "$(dirname "$0")/../.."
runs=$(mktemp -d)
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv -l 30 > "$runs/gpu.csv" 2>&1 &
smi=$!
t="$py tools/train/train.py --pack .train_pack --seconds $seconds"
pids=()
$t --out "$runs/a_w32_la_s1" --seed 1 > "$runs/a.out" 2>&1 & pids+=($!)
$t --out "$runs/b_w32_bs_s2" --seed 2 --loss balanced_sampling > "$runs/b.out" 2>&1 & pids+=($!)
$t --out "$runs/c_w48_la_s3" --seed 3 --widths 48,96,192,320 > "$runs/c.out" 2>&1 & pids+=($!)
$t --out "$runs/d_w32_la_s4" --seed 4 > "$runs/d.out" 2>&1 & pids+=($!)
wait "${pids[@]}"
kill $smi 2>/dev/null
cat "$runs/gpu.csv"
for f in "$runs"/*.out; do echo "== $f"; grep -v '^\[ *[0-9.]*s\] args' "$f" | tail -n 40; done
tar -C "$runs" -cf - . | split -b 15000000 -d - "$out/runs.tar.part"
ls -l "$out"
