"""`rqvae-ids run`: the whole pipeline once, as a Prefect flow (flows/pipeline.py).

No server is needed: Prefect starts a temporary local API for the run. The
output folder gets a new `runs/<run-id>/`, and `latest` moves to it only if
every stage succeeded.
"""

from __future__ import annotations

import argparse
import os
import sys

EPILOG = """\
output folder:
  OUT/runs/<run-id>/   items, embeddings, model/, semantic_ids.parquet, evaluation/,
                       config.json (resolved config), status.json, run_report.json
  OUT/latest           symlink to the last successful run (a failed run never moves it)
  OUT/cache/           embedding cache shared by every run (unchanged texts are not re-encoded)

examples:
  rqvae-ids run --catalog items.csv --interactions events.csv --out out/shop
  rqvae-ids run --catalog items.csv --out out/shop --config configs/default.yaml --set train.epochs=20
  rqvae-ids run --catalog big.jsonl --out out/big --dask-address tcp://10.0.0.5:8786
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline once (embed, train, assign IDs, evaluate) as a Prefect flow",
        description="Run the semantic-ID pipeline on a catalog: ingest -> embed (cached) -> train "
        "(or reuse --model) -> assign collision-free IDs -> evaluate. Runs as the Prefect flow "
        "'semantic-ids-pipeline' on a temporary local Prefect API (no server needed); prints the "
        "run folder and a summary table.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_args(p, catalog_required=True)
    p.set_defaults(func=handler)


def add_run_args(p: argparse.ArgumentParser, *, catalog_required: bool) -> None:
    """Options shared by `run` and `demo`."""
    if catalog_required:
        p.add_argument("--catalog", required=True, metavar="PATH",
                       help="item catalog: csv, tsv, jsonl, parquet, Amazon metadata or MovieLens")
        p.add_argument("--interactions", metavar="PATH",
                       help="user,item[,timestamp] log: enables next-item retrieval metrics")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (runs/, latest, cache/)")
    p.add_argument("--config", metavar="FILE",
                   help="pipeline config (YAML or TOML) with every knob of every stage; see configs/default.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one knob, e.g. --set train.epochs=20 (value read as YAML; repeatable)")
    p.add_argument("--model", metavar="DIR", help="reuse this trained model folder instead of training")
    p.add_argument("--wait", action="store_true",
                   help="if another run holds the output folder, wait for it instead of failing")
    p.add_argument("--dask", action="store_true", help="shard embedding over a local Dask cluster")
    p.add_argument("--dask-address", metavar="ADDR",
                   help="shard embedding over an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--verbose", action="store_true", help="show Prefect's INFO logs")


def parse_overrides(args: argparse.Namespace) -> dict:
    """--set KEY=VALUE pairs (+ --dask/--dask-address) as dotted-key overrides."""
    import yaml

    from ..errors import UserError

    out = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    if args.dask or args.dask_address:
        out["dask.enabled"] = True
    if args.dask_address:
        out["dask.address"] = args.dask_address
    return out


def prefect_env(verbose: bool = False) -> None:
    """Quiet, offline Prefect defaults for a CLI run (the user's own settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def print_run(run_dir: str, seconds: float) -> None:
    from pathlib import Path

    from ..pipeline.summary import format_table, read_run_report, summary_rows

    run_dir = Path(run_dir)
    print(f"run folder: {run_dir}  ({seconds:.1f} s)")
    print(f"latest:     {run_dir.parent.parent / 'latest'} -> runs/{run_dir.name}")
    print(format_table(summary_rows(read_run_report(run_dir).get("stages", {}))))
    report = run_dir / "evaluation" / "report.md"
    if report.is_file():
        print(f"full report: {report}")


def run_pipeline(catalog: str, out: str, interactions: str | None, args: argparse.Namespace) -> int:
    import time

    from ..io import require_file
    from ..pipeline.config import load_config

    overrides = parse_overrides(args)
    load_config(args.config, overrides)  # bad config: one clear line before Prefect starts
    require_file(catalog, "catalog")
    if interactions is not None:
        require_file(interactions, "interactions file")
    prefect_env(args.verbose)
    start = time.perf_counter()
    from flows.pipeline import semantic_ids_pipeline

    run_dir = semantic_ids_pipeline(
        catalog=os.path.abspath(catalog),
        out=os.path.abspath(out),
        interactions=os.path.abspath(interactions) if interactions else None,
        config=os.path.abspath(args.config) if args.config else None,
        model=os.path.abspath(args.model) if args.model else None,
        wait=args.wait or None,
        overrides=overrides or None,
    )
    print_run(run_dir, time.perf_counter() - start)
    sys.stdout.flush()
    return 0


def handler(args: argparse.Namespace) -> int:
    return run_pipeline(args.catalog, args.out, args.interactions, args)
