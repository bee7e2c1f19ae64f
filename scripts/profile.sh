#!/usr/bin/env bash
# A flame graph of one unthrottled initial sync (scripts/profile.py says what).
#   scripts/profile.sh [--records N] [--vendor V] [--out DIR]
# Needs perf (linux-perf); installs inferno (flame graphs) into target/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "profile.sh needs perf" >&2; exit 2; }
if [[ ! -x target/tools/bin/inferno-flamegraph ]]; then
  cargo install --locked --quiet --root target/tools inferno --version 0.12.3
fi
./scripts/build-plugins.sh >/dev/null
export CRMSYNC_PREBUILT_PLUGINS="$PWD/target/plugins"
cargo build --release -p crmsync -p crmsync-sandbox
exec python3 scripts/profile.py "$@"
