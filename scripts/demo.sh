#!/usr/bin/env bash
# The demo: builds the default plugins and crmsync, then runs `crmsync demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-plugins.sh > /dev/null
cargo build --release -p crmsync --quiet
RUST_LOG="${RUST_LOG:-warn}" exec ./target/release/crmsync --data-dir target/demo-data demo "$@"
