#!/bin/sh
# Installs the benchmark peer (onnxruntime-node, CPU) into bench/ort/node_modules from the lock file.
# Scripts stay off: the CPU library ships inside the package, and its postinstall would only try
# to download CUDA/TensorRT bits. Dermal itself never needs any of this.
set -eu
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
node -e 'console.log("onnxruntime-node", require("onnxruntime-node/package.json").version)'
