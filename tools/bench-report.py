#!/usr/bin/env python3
"""`make bench`'s report: criterion's merge estimates as ratios against the baseline measured in
the same run, then the end-to-end results of `miroir-bench` (target/bench/e2e.md, already
ratios against the direct baseline of its own run). Prints everything and writes
target/bench/report.md. Usage: bench-report.py [TARGET_DIR]"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target")
group = root / "criterion" / "merge"
out = root / "bench"


def mean_ns(bench: str, shards: int):
    path = group / bench / str(shards) / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]


sections = []
rows = [
    "| shards | baseline: parse (µs) | parse + merge + serialize (µs) | ratio |",
    "|---|---|---|---|",
]
missing = []
for shards in (3, 12):
    base, full = mean_ns("baseline-parse", shards), mean_ns("parse-merge-serialize", shards)
    if base is None or full is None:
        missing.append(str(shards))
        continue
    rows.append(f"| {shards} | {base / 1000:.1f} | {full / 1000:.1f} | {full / base:.2f}× |")
merge = "## Search merge (criterion, same run)\n\n" + "\n".join(rows) + "\n"
if missing:
    merge += f"\nNo criterion estimates for {', '.join(missing)} shards under {group}.\n"
sections.append(merge)

e2e = out / "e2e.md"
if e2e.exists():
    sections.append(e2e.read_text())
else:
    sections.append(f"## End to end\n\nNot run: no {e2e} (`target/release/miroir-bench` writes it).\n")

report = "# Miroir benchmarks\n\nSee docs/benchmarks.md for how to read this.\n\n" + "\n".join(sections)
out.mkdir(parents=True, exist_ok=True)
(out / "report.md").write_text(report)
print(report)
print(f"written to {out / 'report.md'}")
