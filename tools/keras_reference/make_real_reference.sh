#!/usr/bin/env bash
# Regenerates the committed references for the two real Keras files in ../shared/models/keras_real:
# each file's config and weights are dumped (h5py), run by TensorFlow.js, and the input, output
# and logits land in tests/data/keras/<name>_reference.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
shared="${1:-$root/../shared}"
[ -d "$here/node_modules" ] || (cd "$here" && npm ci --no-audit --no-fund)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for ext in keras h5; do
  name="small_cnn_28_$ext"
  /usr/bin/python3 "$here/dump_keras_file.py" "$shared/models/keras_real/small_cnn_28.$ext" "$tmp/$name"
  node "$here/make_reference.js" --from-dump "$tmp/$name" >/dev/null
  cp "$tmp/$name/reference.json" "$root/tests/data/keras/${name}_reference.json"
done
