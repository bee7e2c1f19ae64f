#!/usr/bin/env bash
# Builds the Python example to a component: $1 (default ../../target/examples/python.wasm).
# Needs componentize-py (scripts/setup-polyglot.sh installs it into .venv).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../../target/examples/python.wasm}
mkdir -p "$(dirname "$out")"
# No -s (stub WASI): the host links an empty WASI, and keeping stderr lets an
# exception's traceback reach the host's trap report.
componentize-py -d ../../wit/since_v1.0.0 -w mapper-plugin componentize app -o "$out" >/dev/null
