#!/usr/bin/env bash
# Installs what the build and tests need beyond the Rust toolchain, Python and
# Node: the wasm32-wasip2 target and the Python test tools (in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet -r tests/python/requirements.txt
