#!/usr/bin/env bash
# Builds {{name}}.wasm (a WebAssembly component).
# Needs clang-19 with wasi-libc (Debian: clang-19 lld-19 libclang-rt-19-dev-wasm32
# wasi-libc), wit-bindgen, wasm-tools, and the WASI preview1 reactor adapter of
# the host's wasmtime version in $CRMSYNC_WASI_ADAPTER. crmsync's
# scripts/setup-polyglot.sh installs them; `source scripts/polyglot-env.sh` sets PATH.
set -euo pipefail
cd "$(dirname "$0")"
adapter=${CRMSYNC_WASI_ADAPTER:?set CRMSYNC_WASI_ADAPTER to wasi_snapshot_preview1.reactor.wasm}
wit-bindgen c wit --world {{role}}-plugin --out-dir gen >/dev/null 2>&1
clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -Wall -mexec-model=reactor -fuse-ld=lld \
  -o core.wasm {{role}}.c gen/{{role}}_plugin.c gen/{{role}}_plugin_component_type.o
wasm-tools component new core.wasm --adapt "wasi_snapshot_preview1=$adapter" -o {{name}}.wasm
rm core.wasm
echo "built {{name}}.wasm; test it: crmsync plugin test {{name}}.wasm --role {{role}} --input fixtures.jsonl"
