#!/usr/bin/env bash
# Installs everything Dermal needs to build, test and run, from Debian's packages. Idempotent:
# when every package is already there it does nothing (and needs no network).
#   tools/setup.sh           build, tests, benchmarks (what ./run and ./test call)
#   tools/setup.sh --build   only what building `dermal` needs (deploy/Dockerfile's build stage)
set -euo pipefail

BUILD_PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config
  # engine and ONNX importer (libdnnl-dev's CMake config asks for OpenCL, which Debian's
  # package only recommends: ocl-icd-opencl-dev, or find_package(dnnl) fails)
  libdnnl-dev ocl-icd-opencl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  # images (vision/)
  libjpeg62-turbo-dev libspng-dev libwebp-dev libheif-dev zlib1g-dev
  # Keras importer (formats/keras/): HDF5, zip, JSON
  libhdf5-dev libzip-dev nlohmann-json3-dev
  # command line
  libcli11-dev
  # the server (serve/): HTTP (its pkg-config file needs OpenSSL's headers), Prometheus metrics
  libcpp-httplib-dev libssl-dev prometheus-cpp-dev
  # the Python module (src/python, python/): pybind11 and Python's headers
  pybind11-dev python3-dev
)
TEST_PACKAGES=(
  # tests and benchmarks: GoogleTest, ONNX's conformance data, the PyTorch reference
  libgtest-dev libonnx-testdata python3 python3-torch python3-onnx python3-numpy python3-pil
  # the Keras reference (tools/keras_reference): h5py writes Keras files, TensorFlow.js runs them
  python3-h5py
  # the lesion check's tests: the sample photos Debian ships with scikit-image (a cat, a coffee cup, ...)
  python3-skimage
  # the browser test (tests/browser): Debian's Chromium, driven by playwright-core from npm
  chromium
  # the fuzz targets (fuzz/): clang with libFuzzer and the sanitizers' runtimes, LLVM's OpenMP
  clang libclang-rt-14-dev libomp-dev
  # the Python module's tests and the Django example (examples/django); the self-contained wheel
  # (python/make_wheel.sh: patchelf sets the bundled libraries' run paths)
  python3-django patchelf
)

case "${1:-}" in
  "") packages=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  --build) packages=("${BUILD_PACKAGES[@]}") ;;
  *) echo "setup: unknown argument '$1' (expected nothing or --build)" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ -z "${1:-}" ]; then
  # Node.js and npm run TensorFlow.js (from npm) for the Keras reference; any install of them will do.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
