#!/usr/bin/env bash
# CTest entry `browser`: installs playwright-core from the committed lock file when it is
# missing (npm ci; the npm registry is reachable in CI), then runs browser_test.js.
#   tests/browser/run_browser_test.sh --binary B --model M --image I --out DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/browser_test.js" "$@"
