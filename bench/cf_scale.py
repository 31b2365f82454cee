"""The CF stage alone at each catalog size: `build_cf_table` on bench/scale_data.py's catalogs.

    .venv/bin/python bench/cf_scale.py --n 50000 --n 200000 --n 1000000

What the pipeline's `cf` stage runs (the interactions' leave-one-out training part -> windowed
co-occurrence -> PPMI -> seeded randomized SVD -> cf_embeddings.parquet), each N in a fresh
process: wall seconds of its parts, the process's peak RSS, and seconds per item relative to
the first N. For `bench/scale.py --reuse-model` runs, which skip cf and train. Writes
bench/out/cf_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "out" / "scale" / "data"

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import pyarrow.csv as pcsv
from rqvae_ids.cf.build import train_part
from rqvae_ids.cf.vectors import CFConfig, cf_vectors
from rqvae_ids.core.cf_table import write_cf_table
data = Path(sys.argv[1])
ids = [str(i) for i in pcsv.read_csv(data / "items.csv").column("item_id").to_pylist()]
cfg = CFConfig()
t0 = time.perf_counter()
train, used = train_part(data / "interactions.csv", ids, cfg, log=lambda m: None)
t1 = time.perf_counter()
vectors, has = cf_vectors(train, len(ids), cfg)
t2 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    write_cf_table(Path(tmp) / "cf.parquet", [i for i, h in zip(ids, has) if h], vectors[has], {})
t3 = time.perf_counter()
print(json.dumps({"items": len(ids), "train_interactions": used["train_interactions"],
                  "read_s": round(t1 - t0, 2), "vectors_s": round(t2 - t1, 2), "write_s": round(t3 - t2, 2),
                  "seconds": round(t3 - t0, 2), "items_with_cf": int(has.sum()),
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, action="append", required=True)
    args = p.parse_args()
    results = []
    for n in args.n:
        if not (DATA / str(n) / "interactions.csv").is_file():
            raise SystemExit(f"no {DATA / str(n)}: run bench/scale_data.py / bench/scale.py --n {n} first")
        load = [round(x, 2) for x in os.getloadavg()]
        out = subprocess.run([sys.executable, "-c", CHILD, str(DATA / str(n))], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        r = {"n": n, **json.loads(out.stdout.strip().splitlines()[-1]), "load_before": load,
             "load_after": [round(x, 2) for x in os.getloadavg()]}
        r["per_item_vs_first"] = round((r["seconds"] / n) / (results[0]["seconds"] / results[0]["n"]), 2) if results else 1.0
        results.append(r)
        print(json.dumps(r), flush=True)
    (ROOT / "bench" / "out" / "cf_scale.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
