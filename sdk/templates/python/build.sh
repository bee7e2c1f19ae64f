#!/usr/bin/env bash
# Builds {{name}}.wasm (a WebAssembly component, ~18 MB: it bundles CPython).
# Needs componentize-py on PATH (pip install componentize-py).
set -euo pipefail
cd "$(dirname "$0")"
componentize-py -d wit -w {{role}}-plugin componentize app -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm; test it: crmsync plugin test {{name}}.wasm --role {{role}} --input fixtures.jsonl"
