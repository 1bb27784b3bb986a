#!/usr/bin/env bash
# A self-contained wheel of `import dermal` for hosts without Debian's -dev packages (a shared
# Python host, a minimal root): the shared libraries the extension loads are bundled beside it
# with $ORIGIN run paths (patchelf), their Debian copyright files in the wheel's licenses.
#   python/make_wheel.sh [OUT_DIR]        # default dist/; prints the wheel's path and size
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
mkdir -p "$out"
wheel=$(DERMAL_WHEEL_BUNDLE=1 /usr/bin/python3 -c "
import sys; sys.path.insert(0, 'python/build_backend')
import dermal_build; print(dermal_build.build_wheel(sys.argv[1]))" "$out")
ls -l "$out/$wheel" | awk '{printf "%s: %.1f MB\n", $NF, $5 / 1048576}'
