"""Profiles one unthrottled initial sync (Salesforce → a marketing platform)
with `perf`, as scripts/bench.sh runs it, and draws a flame graph.

    scripts/profile.sh [--records N] [--vendor activecampaign|mailchimp|brevo] [--out docs/profile]

Writes <out>/<vendor>-<N>.svg (the flame graph of crmsync's own CPU, all
threads) and <out>/<vendor>-<N>.txt (the run's figures and the hottest
frames, self time). The sandbox runs in its own process and is not sampled.
Needs `perf` and `inferno` (scripts/profile.sh installs inferno into
target/tools).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the same sandbox, seed and config as the benchmark)


# Frames whose inclusive share the summary prints (a sample counts once per key).
KEYS = ["wasmtime", "cabi_realloc", "serde_json", "sled", "reqwest", "hyper", "rustls", "malloc", "free",
        "crmsync_engine", "crmsync_connectors", "crmsync_store", "crmsync_runtime", "tokio"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--vendor", default="activecampaign")
    ap.add_argument("--out", default=str(bench.ROOT / "docs" / "profile"))
    ap.add_argument("--name", default="", help="the files' stem (default: <vendor>-<records>)")
    ap.add_argument("--tools", default=str(bench.ROOT / "target" / "tools" / "bin"))
    args = ap.parse_args()
    vendor = next(v for v in bench.VENDORS if v.key == args.vendor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = bench.fresh_dir(bench.ROOT / "target" / "profile" / f"{vendor.key}-{args.records}")
    sb = bench.Sandbox(work, bench.salesforce_seed(vendor, args.records), rate_limits=False)
    try:
        config = bench.write_config(work, sb, vendor, limited=False)
        data = work / "data"
        perf_data = work / "perf.data"
        cmd = ["perf", "record", "-F", "199", "-g", "--call-graph", "dwarf,16384", "-o", str(perf_data), "--",
               str(bench.CRMSYNC), "--config", str(config), "--data-dir", str(data), "run", "--once", "--json"]
        t0 = time.monotonic()
        run = subprocess.run(cmd, env=bench.secrets_env(sb), capture_output=True, text=True)
        wall = time.monotonic() - t0
        if run.returncode != 0:
            print(run.stderr[-4000:], file=sys.stderr)
            return 1
        record = bench.json_objects(run.stdout)[0]
    finally:
        sb.close()
    tools = Path(args.tools)
    script = subprocess.run(["perf", "script", "-i", str(perf_data)], capture_output=True, text=True, check=True)
    folded = subprocess.run([str(tools / "inferno-collapse-perf")], input=script.stdout, capture_output=True,
                            text=True, check=True).stdout
    stem = out / (args.name or f"{vendor.key}-{args.records}")
    title = f"crmsync run --once: {args.records} records Salesforce -> {vendor.name}, unthrottled (perf, all threads)"
    (work / "folded.txt").write_text(folded)
    svg = subprocess.run([str(tools / "inferno-flamegraph"), "--minwidth", "1", "--title", title], input=folded,
                         capture_output=True, text=True, check=True).stdout
    stem.with_suffix(".svg").write_text(svg)
    # Self time per frame (the leaf of each stack) and inclusive time of some frames of interest.
    leaf, total = collections.Counter(), 0
    inclusive = collections.Counter()
    for line in folded.splitlines():
        stack, _, n = line.rpartition(" ")
        frames, n = stack.split(";"), int(n)
        total += n
        leaf[frames[-1]] += n
        for key in KEYS:
            if any(key in f for f in frames):
                inclusive[key] += n
    lines = [
        f"# {title}",
        f"wall {wall:.1f} s under perf; run record: outbound {record.get('outbound', {}).get('created')} created, "
        f"calls {record.get('calls')}",
        f"samples {total}",
        "",
        "## hottest frames, self time",
    ]
    lines += [f"{100 * n / total:5.1f} %  {f[:160]}" for f, n in leaf.most_common(30)]
    lines += ["", "## frames of interest, inclusive"]
    for key in KEYS:
        lines.append(f"{key:<22} {100 * inclusive[key] / total:5.1f} % of samples have a frame containing it")
    stem.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:40]))
    print(f"wrote {stem}.svg and {stem}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
