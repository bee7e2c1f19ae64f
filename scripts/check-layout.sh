#!/usr/bin/env bash
# Checks the layering the architecture promises (ARCHITECTURE.md, "Crates"):
# 1. the engine crate links no HTTP client, database, WebAssembly runtime or
#    HTTP server: `cargo tree -p crmsync-engine -e normal` names none of them;
# 2. outside the vendor folders, the vendor table and the sandbox, no
#    production source names a marketing platform. Excluded: tests, benches,
#    test-support modules (`testing.rs`, `tests.rs`), the plugin contract's
#    `system` enum and its mirrors (the SDK's types, the runtime's binding
#    conversion), and the default plugins (a mapping knows field names).
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
[ "$fail" -eq 0 ] && echo "check-layout: ok (engine links no wasmtime/reqwest/sled/axum; vendors named only in their folders)"
exit "$fail"
