#!/usr/bin/env bash
# The demo: builds the default plugins and crmsync (which embeds them), then
# runs `crmsync demo` (any arguments go to it, e.g. `--marketing <vendor>`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-plugins.sh > /dev/null
export CRMSYNC_PREBUILT_PLUGINS="$PWD/target/plugins"
cargo build --release -p crmsync --quiet
RUST_LOG="${RUST_LOG:-warn}" exec ./target/release/crmsync --data-dir target/demo-data demo "$@"
