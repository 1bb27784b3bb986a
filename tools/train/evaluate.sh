#!/usr/bin/env bash
# Every figure of the bundled model's card, measured by Dermal itself on the two held-out test sets,
# then printed as the card's markdown tables (tools/train/card_tables.py).
#   tools/train/evaluate.sh [MODEL] [OUT_DIR]      (about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-models/skinnet_mnv2_ham_isic224.onnx}
out=${2:-build/model_card}
shared=${DERMAL_SHARED_DIR:-../shared}
mkdir -p "$out"
ham=(--images "$shared/data/ham10000/images" --labels "$shared/data/ham10000/metadata.csv" --split test)
isic=(--images "$shared/data/isic2017/images" --labels tools/train/isic2017_split.csv --split test)
baseline=(--model "$shared/models/mobilenet_v2_ham192.onnx" --card tests/data/cards/mobilenet_v2_ham192.json)
dermal_eval() { build/dermal eval "$@" --json 2>/dev/null; }
dermal_eval --model "$model" "${ham[@]}" > "$out/ham.json"
dermal_eval --model "$model" "${ham[@]}" --temperature 1 > "$out/ham_t1.json"
dermal_eval --model "$model" "${isic[@]}" > "$out/isic.json"
dermal_eval --model "$model" "${isic[@]}" --temperature 1 > "$out/isic_t1.json"
dermal_eval "${baseline[@]}" "${ham[@]}" > "$out/ham_baseline.json"
dermal_eval "${baseline[@]}" "${isic[@]}" > "$out/isic_baseline.json"
/usr/bin/python3 tools/train/robustness.py --dermal build/dermal --shared "$shared" \
  --model "$model" --model "$shared/models/mobilenet_v2_ham192.onnx=tests/data/cards/mobilenet_v2_ham192.json" --json "$out/robustness.json" > "$out/robustness.md"
/usr/bin/python3 tools/train/card_tables.py "$out"
