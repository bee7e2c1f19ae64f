#!/usr/bin/env bash
# Builds the C example to a component: $1 (default ../../target/examples/c.wasm).
# Needs clang-19 + wasi-libc (Debian), wit-bindgen and wasm-tools, and the WASI
# preview1 reactor adapter ($CRMSYNC_WASI_ADAPTER): scripts/setup-polyglot.sh
# installs them and scripts/polyglot-env.sh puts them on PATH.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../../target/examples/c.wasm}
adapter=${CRMSYNC_WASI_ADAPTER:?source scripts/polyglot-env.sh first}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The bindings: gen/mapper_plugin.{c,h} and the component-type object.
wit-bindgen c ../../wit/since_v1.0.0 --world mapper-plugin --out-dir gen >/dev/null 2>&1
# A reactor module (no main; _initialize runs once at instantiation).
clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Werror -mexec-model=reactor -fuse-ld=lld \
  -o "$work/core.wasm" mapper.c gen/mapper_plugin.c gen/mapper_plugin_component_type.o
# Core module + preview1 adapter -> component (the adapter turns its stderr into wasi:cli).
wasm-tools component new "$work/core.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
wasm-tools validate "$out"
