#!/usr/bin/env bash
# Builds the example mapper plugin of every language (examples/<lang>/) into
# target/examples/<lang>.wasm, timing each build into
# target/examples/build-times.json (read by `cargo bench --bench polyglot`).
# The toolchains come from scripts/setup-polyglot.sh.
#   scripts/build-examples.sh            all five
#   scripts/build-examples.sh c go       some
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=polyglot-env.sh
source scripts/polyglot-env.sh
out=target/examples
mkdir -p "$out"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust js python c go)
times=$out/build-times.json
[ -f "$times" ] || echo '{}' >"$times"
for lang in "${langs[@]}"; do
  start=$(date +%s.%N)
  if ! "examples/$lang/build.sh" "$PWD/$out/$lang.wasm"; then
    echo "build-examples: the $lang example failed to build" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  python3 - "$times" "$lang" "$start" "$end" <<'PY'
import json, sys
path, lang, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
with open(path) as f:
    times = json.load(f)
times[lang] = round(end - start, 2)
with open(path, "w") as f:
    json.dump(times, f, indent=1, sort_keys=True)
PY
  printf 'built %-6s %9d bytes in %ss\n' "$lang" "$(stat -c %s "$out/$lang.wasm")" \
    "$(python3 -c "import json;print(json.load(open('$times'))['$lang'])")"
done
