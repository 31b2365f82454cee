"""Whole-comparison benchmark: `rqvae-ids compare` on a catalog, timed, results copied to bench/out.

    .venv/bin/python bench/compare.py --name toys [--epochs 20] [--embeddings PATH] [compare options...]
    .venv/bin/python bench/compare.py --name demo --catalog data/demo/items.csv \
        --interactions data/demo/interactions.csv

Default workload: ../shared/data/amazon-toys (items + interactions). Runs the CLI
in-process with the options given (anything not listed here goes to `compare`),
writes the comparison into bench/out/compare_<name>/ and copies report.md to
bench/out/compare_<name>.md plus the metrics and wall time to bench/out/compare_<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOYS = REPO.parent / "shared" / "data" / "amazon-toys"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="toys")
    parser.add_argument("--catalog", default=str(TOYS / "items.csv"))
    parser.add_argument("--interactions", default=str(TOYS / "interactions.csv"))
    args, rest = parser.parse_known_args()
    if not Path(args.catalog).is_file():
        print(f"bench/compare.py: skipped: catalog {args.catalog} not found (../shared/data lives beside the checkout)")
        return 0
    from rqvae_ids.cli import main as cli

    out = REPO / "bench" / "out" / f"compare_{args.name}"
    argv = ["compare", "--catalog", args.catalog, "--out", str(out)]
    if args.interactions and Path(args.interactions).is_file():
        argv += ["--interactions", args.interactions]
    argv += rest
    start = time.perf_counter()
    rc = cli(argv)
    wall = time.perf_counter() - start
    if rc != 0:
        return rc
    summary = json.loads((out / "comparison.json").read_text())
    record = {"argv": argv, "wall_seconds": round(wall, 1), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "command": summary["command"],
              "metrics": summary["metrics"], "timings": summary["timings"], "tuned": summary["tuned"]}
    (REPO / "bench" / "out" / f"compare_{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    report = (out / "report.md").read_text()
    header = (
        f"<!-- bench/compare.py --name {args.name}: wall {wall:.1f}s on {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end -->\n\n"
        f"Run: `.venv/bin/python bench/compare.py {' '.join(sys.argv[1:])}` (wall {wall:.1f} s)\n\n"
    )
    (REPO / "bench" / "out" / f"compare_{args.name}.md").write_text(header + report)
    print(f"bench/compare.py: {args.name}: {wall:.1f}s; report bench/out/compare_{args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
