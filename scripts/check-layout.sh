#!/usr/bin/env bash
# Checks the layering the architecture promises (ARCHITECTURE.md, "Crates"):
# 1. the engine crate links no HTTP client, database, WebAssembly runtime or
#    HTTP server: `cargo tree -p crmsync-engine -e normal` names none of them;
# 2. outside the vendor folders, the vendor table and the sandbox, no
#    production source names a marketing platform. Excluded: tests, benches,
#    test-support modules (`testing.rs`, `tests.rs`), the plugin contract's
#    `system` enum and its mirrors (the SDK's types, the runtime's binding
#    conversion), and the default plugins (a mapping knows field names);
# 3. production code builds HTTP clients only through crmsync's TLS settings
#    (`connectors/src/http.rs`): reqwest has no TLS provider of its own, so
#    `reqwest::Client::new()` panics in the shipped binary — and only there,
#    as the tests' dev-dependencies give reqwest one.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
bad=$(cargo tree -p crmsync-engine -e normal --prefix none 2>/dev/null | grep -E '^(wasmtime|reqwest|sled|axum) ' || true)
if [ -n "$bad" ]; then
  echo "check-layout: crmsync-engine depends on:"; echo "$bad" | sort -u
  fail=1
fi

vendors='activecampaign|mailchimp|brevo'
hits=$(grep -rliE "$vendors" host --include='*.rs' \
  | grep -vE '^host/(tests|benches)/' \
  | grep -vE '^host/connectors/src/(vendors\.rs|activecampaign/|mailchimp/|brevo/)' \
  | grep -vE '/(testing|tests)\.rs$' \
  | grep -vE '^host/runtime/src/convert\.rs$' \
  || true)
if [ -n "$hits" ]; then
  echo "check-layout: these production files name a marketing platform (move the code into its vendor folder):"
  for f in $hits; do grep -niE "$vendors" "$f" | sed "s|^|  $f:|"; done
  fail=1
fi
clients=$(grep -rnE 'Client::new\(\)|Client::builder\(\)' host/src host/connectors/src host/engine/src host/runtime/src host/store/src host/core/src --include='*.rs' \
  | grep -v '^host/connectors/src/http\.rs:' \
  | grep -vE '/(testing|tests)\.rs:' \
  || true)
if [ -n "$clients" ]; then
  echo "check-layout: HTTP clients built without crmsync's TLS settings (use crmsync_connectors::http::plain_client):"
  echo "$clients" | sed 's/^/  /'
  fail=1
fi
[ "$fail" -eq 0 ] && echo "check-layout: ok (engine links no wasmtime/reqwest/sled/axum; vendors named only in their folders; HTTP clients built with crmsync's TLS settings)"
exit "$fail"
