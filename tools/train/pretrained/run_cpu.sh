#!/usr/bin/env bash
# The whole pretrained-features recipe on one CPU thread (tools/train/NOTES.md, "Pretrained features").
#   tools/train/pretrained/run_cpu.sh [WORK_DIR] [VIEWS] [NAME]
# WORK_DIR (default /work/cache, outside the repository) receives node_modules, the dumped weights,
# the cached maps (about 380 MB a view) and the runs. VIEWS: augmented views to extract (default
# "1"). Then evaluate the exported model with tools/train/evaluate.sh WORK_DIR/export/NAME.onnx.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/work/cache}
views=${2:-1}
name=${3:-mobilenet_v2_nsfwjs_ham_isic224}
export OMP_NUM_THREADS=1
mkdir -p "$work/npm" "$work/maps" "$work/runs"
cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$work/npm/"
(cd "$work/npm" && npm ci --no-audit --no-fund)
export NODE_PATH="$work/npm/node_modules"
node "$here/dump_nsfwjs.js" "$work/mnv2"
/usr/bin/python3 "$here/convert_nsfwjs.py" "$work/mnv2" --check 10 --node-path "$NODE_PATH"
w="$work/mnv2/mobilenet_v2_nsfwjs.pt"
list=0
for v in 0 $views; do
  [ -f "$work/maps/view$v.npz" ] || /usr/bin/python3 "$here/extract.py" "$w" "$work/maps" --view "$v"
  [ "$v" = 0 ] || list="$list,$v"
done
/usr/bin/python3 "$here/finetune.py" "$w" "$work/maps" "$work/runs/tail" --views "$list" --mode tail \
  --epochs 10 --lr 3e-4
/usr/bin/python3 "$here/export.py" "$w" "$work/runs/tail/model.pt" --name "$name" --out "$work/export" \
  --compare 40
