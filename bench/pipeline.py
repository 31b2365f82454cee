"""Prefect overhead of the pipeline flow, and the `make demo` time.

    .venv/bin/python bench/pipeline.py [--repeat R] [--skip-demo] [--catalog PATH --interactions PATH]

1. overhead: the same stages, same config, same warm embedding cache, each in a
   fresh Python process (imports included on both sides):
     direct  the `rqvae_ids.pipeline.stages` functions called in sequence (no Prefect)
     flow    `flows.pipeline.semantic_ids_pipeline` (ephemeral Prefect API started by the run)
   With --repeat R the pair alternates R times and the best of each is kept.
   Target: flow - direct < 10 % of direct, or < 10 s.
2. demo: `rqvae-ids demo` into a fresh folder with a cold embedding cache: what
   `make demo` costs after `make setup`. Target < 180 s on 2 cores.

Workload: the demo shop (data/demo, 5,000 items) with configs/demo.yaml.
Writes bench/out/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out" / "pipeline.json"
BIN = Path(sys.executable).parent

DIRECT = """
import sys
from rqvae_ids.core.config import to_dict
from rqvae_ids.pipeline import runs, stages
from rqvae_ids.pipeline.config import load_pipeline_config, with_embed_cache
catalog, interactions, out, config, cache = sys.argv[1:6]
cfg = with_embed_cache(load_pipeline_config(config), cache)
with runs.open_run(out, "pipeline", to_dict(cfg)) as run:
    d = str(run.dir)
    items = run.record("ingest", stages.ingest(catalog, d, cfg.catalog))["path"]
    emb = run.record("embed", stages.embed(items, d, cfg.embed))["path"]
    model = run.record("train", stages.train(emb, d, cfg.train))["path"]
    run.record("assign", stages.assign(model, emb, d, cfg.ids))
    run.record("evaluate", stages.evaluate(d, cfg.evaluate, interactions))
print(run.dir)
"""

FLOW = """
import sys
from flows.pipeline import semantic_ids_pipeline
catalog, interactions, out, config, cache = sys.argv[1:6]
print(semantic_ids_pipeline(catalog, out, interactions, config, overrides={"embed.cache": cache}))
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:4])}...\n{proc.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=REPO / "data" / "demo" / "items.csv")
    parser.add_argument("--interactions", type=Path, default=REPO / "data" / "demo" / "interactions.csv")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-demo", action="store_true", help="only the overhead measurement")
    args = parser.parse_args()
    if not args.catalog.is_file():
        sys.exit(f"catalog not found: {args.catalog} (python data/demo/generate.py creates the demo shop)")

    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PREFECT_API_URL", None)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    result: dict = {"catalog": str(args.catalog), "config": str(args.config), "cpus": os.cpu_count(),
                    "load_avg_start": os.getloadavg()}
    try:
        env["PREFECT_HOME"] = str(work / "prefect-home")
        cache = str(work / "cache.parquet")
        common = [str(args.catalog), str(args.interactions), "", str(args.config), cache]
        print("warming the embedding cache (not timed)...", flush=True)
        timed([sys.executable, "-c", DIRECT, *common[:2], str(work / "warm"), *common[3:]], env)
        direct, flow = [], []
        for r in range(args.repeat):
            common[2] = str(work / f"direct{r}")
            direct.append(timed([sys.executable, "-c", DIRECT, *common], env))
            common[2] = str(work / f"flow{r}")
            flow.append(timed([sys.executable, "-c", FLOW, *common], env))
            print(f"  round {r + 1}: direct {direct[-1]:.1f} s, flow {flow[-1]:.1f} s", flush=True)
        best_d, best_f = min(direct), min(flow)
        overhead = best_f - best_d
        result["overhead"] = {
            "direct_s": round(best_d, 2), "flow_s": round(best_f, 2), "overhead_s": round(overhead, 2),
            "overhead_pct": round(100 * overhead / best_d, 1), "rounds": {"direct": direct, "flow": flow},
            "target": "< 10 % or < 10 s", "met": overhead < 10 or overhead < 0.1 * best_d,
        }
        print(f"flow {best_f:.1f} s vs direct {best_d:.1f} s: overhead {overhead:.1f} s "
              f"({100 * overhead / best_d:.1f} %)", flush=True)
        if not args.skip_demo:
            demo_out = work / "demo"
            seconds = timed([str(BIN / "rqvae-ids"), "demo", "--out", str(demo_out)], env)
            result["demo"] = {"seconds": round(seconds, 2), "cold_cache": True, "target_s": 180, "met": seconds < 180}
            print(f"rqvae-ids demo (cold cache, fresh folder): {seconds:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_avg_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
