#!/usr/bin/env bash
# The Keras importer's test models (CTest fixture keras_reference): TensorFlow.js builds the
# architectures and small models and computes their references, then h5py writes each one as
# .keras and .h5, plus the messy variants real files come in, and TensorFlow.js saves each one in
# its own layers format (model.json + shards; quantised variants with TF.js's outputs for them).
#   tools/keras_reference/make_test_models.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: make_test_models.sh OUT_DIR}"
if [ ! -d "$here/node_modules/@tensorflow/tfjs-layers" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
rm -rf "$out"
mkdir -p "$out"
node "$here/make_reference.js" --out "$out" 2>&1 | grep -v -e '^=*$' -e 'tfjs-node' -e 'Hi, looks like' || true
test -f "$out/xception/reference.json"
/usr/bin/python3 "$here/write_keras_files.py" "$out" --messy
# (pipefail: a failure of node fails the fixture; grep finding nothing to print does not)
node "$here/write_tfjs_files.js" --out "$out" 2>&1 | { grep -v -e '^=*$' -e 'tfjs-node' -e 'Hi, looks like' || true; }
