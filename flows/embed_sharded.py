"""Distributed embedding: shard the texts missing from the cache over Dask workers.

`embed_items_sharded` plans shards (only uncached texts), encodes each shard as
its own task (so the task runner spreads them over workers), and merges them
into the shared cache and one `embeddings.parquet` in catalog order. Its task
runner is a `prefect_dask.DaskTaskRunner`: a local cluster by default, or an
existing one by address (`dask_runner(address="tcp://scheduler:8786")`).

Run it on its own over a catalog:

    python -m flows.embed_sharded --catalog items.csv --out out/emb              # local 2-worker cluster
    python -m flows.embed_sharded --catalog items.csv --out out/emb --dask-address tcp://host:8786

Dask's process workers re-import the entry module, hence the `__main__` guard.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, unmapped
from prefect_dask import DaskTaskRunner

from flows import tasks
from rqvae_ids.pipeline.config import DaskOptions


def dask_runner(opts: DaskOptions | None = None, address: str | None = None) -> DaskTaskRunner:
    """A DaskTaskRunner: `address` (or opts.address) for an existing cluster, else a local process cluster."""
    opts = opts or DaskOptions()
    address = address or opts.address
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": opts.n_workers,
            "threads_per_worker": opts.threads_per_worker,
            "processes": True,
            "host": "127.0.0.1",  # scheduler and workers listen on loopback only
            "dashboard_address": None,  # no dashboard; its HTTP port on loopback, any free port:
            "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        }
    )


@flow(name="embed-items-sharded", task_runner=dask_runner(), validate_parameters=False)
def embed_items_sharded(items: str, out_dir: str, embed_cfg: Any, shard_size: int = 2000) -> dict[str, Any]:
    """items.parquet -> out_dir/embeddings.parquet, uncached texts encoded shard by shard on Dask workers."""
    shard_paths = tasks.plan_shards(items, out_dir, embed_cfg, shard_size)
    vectors = tasks.encode_shard.map(shard_paths, cfg=unmapped(embed_cfg))
    return tasks.merge_shards(items, vectors.result(), out_dir, embed_cfg)


def sharded_flow(opts: DaskOptions | None = None, address: str | None = None):
    """`embed_items_sharded` bound to the cluster of `opts` / `address`."""
    return embed_items_sharded.with_options(task_runner=dask_runner(opts, address))


@flow(name="embed-catalog-sharded")
def embed_catalog_sharded(
    catalog: str,
    out: str,
    config: str | None = None,
    dask_address: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Ingest `catalog` into `out/items.parquet`, then embed it sharded (cache: OUT/cache/)."""
    cfg = tasks.load_config(out, config)
    tasks.ingest(catalog, out, cfg.catalog)
    items = f"{out}/items.parquet"
    run = sharded_flow(cfg.dask, dask_address)
    return run(items, out, cfg.embed, shard_size or cfg.dask.shard_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.embed_sharded",
        description="Embed a catalog with the encoding sharded over Dask workers (local cluster or --dask-address).",
    )
    parser.add_argument("--catalog", required=True, help="catalog file (csv, tsv, jsonl, parquet, ...)")
    parser.add_argument("--out", required=True, help="output folder: items.parquet, embeddings.parquet, cache/")
    parser.add_argument("--config", help="pipeline config file (YAML/TOML); its catalog, embed and dask sections apply")
    parser.add_argument("--dask-address", help="scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--shard-size", type=int, help="texts per task (default: dask.shard_size, 2000)")
    args = parser.parse_args(argv)
    report = embed_catalog_sharded(args.catalog, args.out, args.config, args.dask_address, args.shard_size)
    print(f"{report['items']} items ({report['encoded']} encoded in {report['shards']} shard(s)): {report['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
