"""Embedding sharded over a Dask LocalCluster of 2 workers against the single-process vectors.

    .venv/bin/python bench/dask_embed.py --n 200000 [--shard-size 2000]

Needs the catalog of `bench/scale.py --n N` (bench/scale_data.py writes it). Runs the
`embed-catalog-sharded` flow (Prefect + prefect-dask's DaskTaskRunner, a local cluster of 2
single-threaded worker processes, cold cache) on it into bench/out/scale/dask/<N>/, then reads the
flow's `encode shard` task runs from the (temporary) Prefect API for the per-shard cost, and
compares the vectors with single-process ones item by item (max abs difference; fp32 equality
within 1e-5): the pipeline run's embeddings.parquet when `bench/scale.py --n N` ran without a
prefilled cache, else (or with --sample K) K seeded items encoded here in one process with the
same default backend (a whole second encoding of 200k texts costs another ~27 min on 2 cores).
Writes bench/out/scale_dask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "scale"


def shard_costs(flow_run_id) -> list[float]:
    """Seconds of each `encode shard` task run of the flow run and its subflows (the API pages by 200)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        flows = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id, *[c.id for c in children]]))
        tasks = TaskRunFilter(name=TaskRunFilterName(like_="encode"))
        found, offset = [], 0
        while True:
            page = client.read_task_runs(flow_run_filter=flows, task_run_filter=tasks, limit=200, offset=offset)
            found += page
            offset += len(page)
            if len(page) < 200:
                break
    return sorted(r.total_run_time.total_seconds() for r in found if r.total_run_time)


def compare_single(sharded, single: Path | None, catalog: Path, sample: int) -> tuple[float, str]:
    """(max |sharded - single-process| over the compared items, what was compared)."""
    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.embed import EmbedConfig, encode_texts

    if not sample:
        b = read_embeddings(single / "embeddings.parquet")
        assert list(sharded.item_ids) == list(b.item_ids), "item order differs"
        return float(np.abs(sharded.vectors - b.vectors).max()), f"all {len(b)} items of {single}"
    cat = load_catalog(catalog)
    assert list(sharded.item_ids) == list(cat.item_ids), "item order differs"
    rows = np.sort(np.random.default_rng(0).choice(len(cat.item_ids), min(sample, len(cat.item_ids)), replace=False))
    mine = encode_texts([cat.texts[i] for i in rows], EmbedConfig())
    return float(np.abs(sharded.vectors[rows] - mine).max()), f"{len(rows)} seeded items encoded in one process"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--shard-size", type=int, default=2000)
    p.add_argument("--sample", type=int, default=0,
                   help="compare K seeded items encoded in this process (default: the pipeline run's vectors)")
    args = p.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.embed_sharded import embed_catalog_sharded
    from rqvae_ids.core.embedding_table import read_embeddings
    from rqvae_ids.pipeline import runs

    catalog = OUT / "data" / str(args.n) / "items.csv"
    single = runs.latest_run(OUT / "runs" / str(args.n))
    if not catalog.is_file():
        raise SystemExit(f"no catalog {catalog}: run bench/scale_data.py or bench/scale.py --n {args.n} first")
    if single is not None and "prefilled_cache" in json.loads((OUT.parent / "scale.json").read_text()).get(
            "runs", {}).get(str(args.n), {}):
        single = None  # its vectors are substitutes, not an encoding
    sample = args.sample or (0 if single is not None else 2000)
    out = OUT / "dask" / str(args.n)
    shutil.rmtree(out, ignore_errors=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    state = embed_catalog_sharded(str(catalog), str(out), shard_size=args.shard_size, return_state=True)
    seconds = time.perf_counter() - start
    report = state.result()
    costs = shard_costs(state.state_details.flow_run_id)
    a = read_embeddings(out / "embeddings.parquet")
    diff, compared = compare_single(a, single, catalog, sample)
    result = {
        "n": args.n, "workers": 2, "threads_per_worker": 1, "shard_size": args.shard_size,
        "shards": report["shards"], "encoded": report["encoded"], "seconds": round(seconds, 1),
        "items_per_s": round(args.n / seconds, 1),
        "shard_seconds": {"min": round(costs[0], 1), "median": round(costs[len(costs) // 2], 1),
                          "max": round(costs[-1], 1), "mean": round(sum(costs) / len(costs), 1)} if costs else None,
        "per_item_ms": round(1000 * sum(costs) / max(report["encoded"], 1), 2) if costs else None,
        "max_abs_diff_vs_single_process": diff, "equal_within_1e-5": diff <= 1e-5, "compared": compared,
        "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    (ROOT / "bench" / "out" / "scale_dask.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
