# Source this (`source scripts/polyglot-env.sh`) to put the toolchains that
# scripts/setup-polyglot.sh installed on PATH. Works from any directory.
_crmsync_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_crmsync_root/target/tools/bin:$_crmsync_root/target/tools/node/node_modules/.bin:$_crmsync_root/.venv/bin:$PATH"
export CRMSYNC_WASI_ADAPTER="$_crmsync_root/target/tools/wasi_snapshot_preview1.reactor.wasm"
unset _crmsync_root
