#!/usr/bin/env bash
# Builds {{name}}.wasm (a WebAssembly component, ~12 MB: it bundles a JS engine).
# Needs componentize-js on PATH (npm install @bytecodealliance/componentize-js).
set -euo pipefail
cd "$(dirname "$0")"
# -d http fetch-event: no wasi:http import (plugins get no network).
componentize-js {{role}}.js --wit wit -n {{role}}-plugin -d http fetch-event -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm; test it: crmsync plugin test {{name}}.wasm --role {{role}} --input fixtures.jsonl"
