#!/usr/bin/env bash
# Builds the Rust example to a component: $1 (default ../../target/examples/rust.wasm).
# Needs the wasm32-wasip2 target (scripts/setup.sh adds it). The crate is a
# member of the repository's workspace, so it shares its lock file and cache.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../../target/examples/rust.wasm}
mkdir -p "$(dirname "$out")"
cargo build --quiet --profile plugin --target wasm32-wasip2 -p lead-to-contact
cp ../../target/wasm32-wasip2/plugin/lead_to_contact.wasm "$out"
