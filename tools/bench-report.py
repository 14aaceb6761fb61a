#!/usr/bin/env python3
"""Turns criterion's estimates into ratios against the baseline measured in the same run, prints
them and writes target/bench/report.md."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target")
group = root / "criterion" / "merge"


def mean_ns(bench: str, shards: int) -> float:
    estimates = json.loads((group / bench / str(shards) / "new" / "estimates.json").read_text())
    return estimates["mean"]["point_estimate"]


rows = ["| shards | baseline: parse (µs) | parse + merge + serialize (µs) | ratio |", "|---|---|---|---|"]
for shards in (3, 12):
    base, full = mean_ns("baseline-parse", shards), mean_ns("parse-merge-serialize", shards)
    rows.append(f"| {shards} | {base / 1000:.1f} | {full / 1000:.1f} | {full / base:.2f}× |")
report = "# Search merge (criterion, same run)\n\n" + "\n".join(rows) + "\n"
out = root / "bench"
out.mkdir(parents=True, exist_ok=True)
(out / "report.md").write_text(report)
print(report)
print(f"written to {out / 'report.md'}")
