#!/usr/bin/env python3
"""`make bench`'s report: criterion's merge and partition estimates as ratios against the
baselines measured in the same run, then the end-to-end results of `miroir-bench`
(target/bench/e2e.md, already ratios against the direct baseline of its own run). Prints
everything and writes target/bench/report.md. Usage: bench-report.py [TARGET_DIR]"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target")
group = root / "criterion" / "merge"
out = root / "bench"


def mean_ns(bench: str, shards: int, group=group):
    path = group / bench / str(shards) / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]


sections = []
rows = [
    "| shards | node answers | baseline: parse into values (µs) | read + merge + write (µs) | ratio |",
    "|---|---|---|---|---|",
]
missing = []
for shards, suffix, what in ((3, "", "with ranking details"), (3, "-score-only", "score only"), (12, "", "with ranking details")):
    base = mean_ns("baseline-parse" + suffix, shards)
    full = mean_ns("parse-merge-serialize" + suffix, shards)
    if base is None or full is None:
        missing.append(f"{shards} ({what})")
        continue
    rows.append(f"| {shards} | {what} | {base / 1000:.1f} | {full / 1000:.1f} | {full / base:.2f}× |")
merge = "## Search merge (criterion, same run)\n\n" + "\n".join(rows) + "\n"
if missing:
    merge += f"\nNo criterion estimates for {', '.join(missing)} shards under {group}.\n"
sections.append(merge)

partition = root / "criterion" / "partition"
base, full = (mean_ns(b, "20MB", partition) for b in ("baseline-parse", "parse-validate-partition"))
if base is None or full is None:
    sections.append(
        f"## Document batch (criterion, same run)\n\nNo criterion estimates under {partition} "
        "(`cargo bench -p miroir-filter --bench partition`).\n"
    )
else:
    size = json.loads((partition / "baseline-parse" / "20MB" / "new" / "benchmark.json").read_text())
    mb = size["throughput"]["Bytes"] / 1e6
    sections.append(
        "## Document batch (criterion, same run)\n\n"
        f"{mb:.1f} MB of NDJSON (~1 KB documents), 3 nodes.\n\n"
        "| baseline: parse into values (ms) | parse + validate + every node's body (ms) | ratio |\n"
        "|---|---|---|\n"
        f"| {base / 1e6:.1f} ({mb / (base / 1e9):.0f} MB/s) | {full / 1e6:.1f} "
        f"({mb / (full / 1e9):.0f} MB/s) | {full / base:.2f}× |\n"
    )

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
