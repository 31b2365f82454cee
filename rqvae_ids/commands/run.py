"""`rqvae-ids run`: the whole pipeline once, as a Prefect flow (flows/pipeline.py).

No server is needed: Prefect starts a temporary local API for the run. The
output folder gets a new `runs/<run-id>/`, and `latest` moves to it only if
every stage succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from ._help import INTERACTIONS, RemovedFlag, add_output_flags

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
  rqvae-ids run --catalog meta.jsonl --id-col asin --template "{title}. {brand}" --out out/amz

The catalog options (--format, --id-col, --text-cols, --template, --on-duplicate,
--drop-empty) set the config's catalog section, as --set catalog.KEY=VALUE would;
one left out keeps the config's value.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline once (embed, train, assign IDs, evaluate) as a Prefect flow",
        description="Run the semantic-ID pipeline on a catalog: ingest -> embed (cached) -> train "
        "(or reuse --model-dir) -> assign collision-free IDs -> evaluate. Runs as the Prefect flow "
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
        add_catalog_flags(p)
        p.add_argument("--interactions", metavar="FILE",
                       help=f"{INTERACTIONS}: the tokenizer trains on their CF embeddings too (the default kind "
                            "is then rqkmeans-cf, else rqkmeans; --set cf.enabled=false for text-only, "
                            "--set train.model.kind=rqvae for the RQ-VAE) and the evaluation adds next-item metrics")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (runs/, latest, cache/)")
    p.add_argument("--config", metavar="FILE",
                   help="pipeline config (YAML or TOML) with every knob of every stage; see configs/default.yaml")
    add_set_flag(p)
    p.add_argument("--model-dir", metavar="DIR", help="reuse this trained model folder instead of training")
    p.add_argument("--model", action=RemovedFlag, use="--model-dir DIR")  # the old spelling
    p.add_argument("--embed-model", metavar="DIR",
                   help="sentence-transformers model folder to embed with (default: the config's, the bundled "
                        "all-MiniLM-L6-v2); same as --set embed.model=DIR")
    p.add_argument("--wait", action="store_true",
                   help="if another run holds the output folder, wait for it instead of failing")
    p.add_argument("--dask", action="store_true", help="shard embedding over a local Dask cluster")
    p.add_argument("--dask-address", metavar="ADDR",
                   help="shard embedding over an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--verbose", action="store_true",
                   help="show Prefect's INFO logs, and its own log of a run that failed on bad input")
    add_output_flags(p, quiet="the line of every stage", json_line=False)


def add_set_flag(p: argparse.ArgumentParser) -> None:
    """--set KEY=VALUE on the pipeline config (`run`, `demo`, `serve`)."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one knob of the pipeline config, e.g. --set train.epochs=20 (dotted keys as in "
                        "configs/default.yaml, value typed by the knob; repeatable)")


def add_catalog_flags(p: argparse.ArgumentParser) -> None:
    """--catalog and the catalog flags every other command has (rqvae_ids/catalog/args.py).

    Here they feed the pipeline config: a flag the user gives becomes the override
    `catalog.KEY=VALUE` (see `catalog_overrides`); one left out is None, so the config
    file (or the latest run's config, for `serve`) keeps its value.
    """
    from ..catalog.args import CATALOG_FLAGS, add_catalog_args  # argparse only: --help stays fast

    add_catalog_args(p)
    p.set_defaults(**{dest: None for dest in CATALOG_FLAGS})  # parser defaults win over the flags' own


def catalog_overrides(args: argparse.Namespace) -> dict:
    """The catalog flags given on the command line as dotted-key overrides, e.g. {"catalog.id_col": "asin"}."""
    from ..catalog.args import catalog_options

    return {f"catalog.{key}": value for key, value in catalog_options(args).items() if value is not None}


def config_overrides(args: argparse.Namespace) -> dict:
    """Catalog flags and --set KEY=VALUE pairs as dotted-key overrides of the pipeline config
    (a --set of the same key as a catalog flag wins: it comes later)."""
    from ..core.config import parse_set
    from ..pipeline.config import PipelineConfig

    return {**catalog_overrides(args), **parse_set(args.overrides, PipelineConfig)}


def parse_overrides(args: argparse.Namespace) -> dict:
    """`config_overrides` plus --embed-model and --dask/--dask-address."""
    out = config_overrides(args)
    if getattr(args, "embed_model", None):
        out["embed.model"] = args.embed_model
    if args.dask or args.dask_address:
        out["dask.enabled"] = True
    if args.dask_address:
        out["dask.address"] = args.dask_address
    return out


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


def interrupted_message(out: str) -> str:
    """Ctrl-C: the run folder is marked failed and `latest` stays where it was; say where."""
    from ..pipeline.runs import latest_run

    previous = latest_run(out)
    where = f"still runs/{previous.name}" if previous is not None else "no run has succeeded here yet"
    return f"interrupted: {out.rstrip('/')}/latest unchanged ({where})"


def run_pipeline(catalog: str, out: str, interactions: str | None, args: argparse.Namespace) -> int:
    import time

    from ..core.io import check_out_dir
    from ..pipeline.preflight import check_run_inputs

    # Every check a user can fail comes before Prefect starts and before anything is written.
    check_out_dir(out)
    overrides = parse_overrides(args)
    for warning in check_run_inputs(catalog, interactions, args.config, overrides, args.model_dir):
        print(f"rqvae-ids {args.command}: {warning}", file=sys.stderr)
    from flows.runtime import prefect_env, require_prefect_server, user_errors_without_prefect_logs

    prefect_env(args.verbose)
    require_prefect_server(
        "start it (`prefect server start --host 127.0.0.1`), or unset PREFECT_API_URL "
        "to run on a temporary local API"
    )
    start = time.perf_counter()
    from flows.pipeline import semantic_ids_pipeline

    from ..pipeline import progress

    if not args.quiet:
        progress.enable("run")  # a line per stage on stderr (bars on a terminal)
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(progress.disable)
            stack.enter_context(user_errors_without_prefect_logs(enabled=not args.verbose))
            run_dir = semantic_ids_pipeline(
                catalog=os.path.abspath(catalog),
                out=os.path.abspath(out),
                interactions=os.path.abspath(interactions) if interactions else None,
                config=os.path.abspath(args.config) if args.config else None,
                model=os.path.abspath(args.model_dir) if args.model_dir else None,
                wait=args.wait or None,
                overrides=overrides or None,
            )
    except KeyboardInterrupt:
        print(interrupted_message(out), file=sys.stderr)
        return 130
    print_run(run_dir, time.perf_counter() - start)
    sys.stdout.flush()
    return 0


def handler(args: argparse.Namespace) -> int:
    return run_pipeline(args.catalog, args.out, args.interactions, args)
