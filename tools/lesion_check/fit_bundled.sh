#!/usr/bin/env bash
# Fits the bundled model's lesion check (models/<model>.check.json) on the images that trained it:
# HAM10000 train + val and the ISIC 2017 train + val parts (tools/train/isic2017_split.csv). The
# test images of both stay out, for tools/lesion_check/measure.py.
#   tools/lesion_check/fit_bundled.sh [MODEL] [SHARED]
set -euo pipefail
cd "$(dirname "$0")/../.."
model="${1:-models/skinnet_mnv2_ham_isic224.onnx}"
shared="${2:-../shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ham="$work/ham10000_train_val" isic="$work/isic2017_train_val"
mkdir -p "$ham" "$isic"
awk -F, 'NR > 1 && ($9 == "train" || $9 == "val") { print $1 }' "$shared/data/ham10000/metadata.csv" |
  while read -r id; do ln -s "$(realpath "$shared/data/ham10000/images/$id.jpg")" "$ham/$id.jpg"; done
awk -F, 'NR > 1 && ($3 == "train" || $3 == "val") { print $1 }' tools/train/isic2017_split.csv |
  while read -r id; do ln -s "$(realpath "$shared/data/isic2017/images/$id.jpg")" "$isic/$id.jpg"; done
build/dermal fit-check --threads 1 --model "$model" --images "$ham" "$isic" --pass-rate 0.99
