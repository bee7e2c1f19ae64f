#!/usr/bin/env bash
# Builds the JavaScript example to a component: $1 (default ../../target/examples/js.wasm).
# Needs componentize-js (scripts/setup-polyglot.sh installs it under target/tools/node).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../../target/examples/js.wasm}
mkdir -p "$(dirname "$out")"
# -d http fetch-event: no wasi:http import (the host grants no network). Stdio
# stays, so an uncaught exception's message reaches the host's trap report.
componentize-js mapper.js --wit ../../wit/since_v1.0.0 -n mapper-plugin -d http fetch-event -o "$out" >/dev/null
