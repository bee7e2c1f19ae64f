#!/usr/bin/env bash
# Builds every plugin in this repository to a WebAssembly component
# (wasm32-wasip2) and copies them to target/plugins/:
#   the default plugins (plugins/*) and the hostile test plugins (tests/hostile/*).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

crates=(standard-mapping selection field-policy-resolver hostile wrong-contract)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo build --profile plugin --target wasm32-wasip2 "${args[@]}"

mkdir -p target/plugins
for c in "${crates[@]}"; do
  cp "target/wasm32-wasip2/plugin/${c//-/_}.wasm" "target/plugins/$c.wasm"
done
# Each default plugin's own fixtures and config schema travel beside it: the
# fixtures must pass before it is installed, and every config it runs with
# must satisfy the schema.
for c in standard-mapping selection field-policy-resolver; do
  cp "plugins/$c/fixtures.jsonl" "target/plugins/$c.fixtures.jsonl"
  cp "plugins/$c/config.schema.json" "target/plugins/$c.schema.json"
done
ls -l target/plugins
