#!/usr/bin/env bash
# Every benchmark against the offline vendor sandbox on loopback, one report.
#
#   scripts/bench.sh               full: BENCHMARKS.md and bench/results.json (commit them)
#   scripts/bench.sh --repeats N   full, with N repeats per sync scenario instead of 3
#                                  (shorter; the report prints the command and the repeats)
#   scripts/bench.sh --backfill N  full, with an N-record backfill instead of 1,000,000
#                                  (shorter; below 1,000,000 the SPEC's target is not judged)
#   scripts/bench.sh --quick       CI smoke run (about a minute per vendor once built):
#                                  target/bench-quick/, exits non-zero if a run fails,
#                                  a count is wrong, or a record is lost or duplicated
#
# Builds what it needs with the release profile (a no-op after scripts/test.sh),
# then runs scripts/bench.py (Python 3 standard library only). See the
# docstring of scripts/bench.py for what is measured and how.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/bench.sh [--quick] [--repeats N] [--backfill N]" >&2; exit 2; }
args=("$@")
while (($#)); do
  case "$1" in
    --quick) shift ;;
    --repeats|--backfill) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage; shift 2 ;;
    *) usage ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"

./scripts/build-plugins.sh >/dev/null
# The binary embeds the default rules just built (host/build.rs).
export CRMSYNC_PREBUILT_PLUGINS="$PWD/target/plugins"
cargo build --release -p crmsync -p crmsync-sandbox
cargo bench -p crmsync --bench plugins --bench hotswap --no-run

BENCH_COMMAND="scripts/bench.sh${*:+ $*}" exec python3 scripts/bench.py "$@"
