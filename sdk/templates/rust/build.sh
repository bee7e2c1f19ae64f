#!/usr/bin/env bash
# Runs the native tests (fixtures.jsonl included, natively), builds
# {{name}}.wasm (a WebAssembly component), then says how to run the same
# fixtures against the component.
# Needs: rustup target add wasm32-wasip2
set -euo pipefail
cd "$(dirname "$0")"
cargo test --quiet
cargo build --quiet --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm; test it: crmsync plugin test {{name}}.wasm --role {{role}} --input fixtures.jsonl"
