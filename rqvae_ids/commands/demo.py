"""`rqvae-ids demo`: the pipeline on the bundled demo shop (data/demo/), into ./out/demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from .run import add_run_args, run_pipeline

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO / "data" / "demo"
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the pipeline on the bundled demo catalog (what `make demo` does)",
        description="Run the full pipeline (Prefect flow, no server needed) on the synthetic demo shop "
        f"in {DEMO_DATA.relative_to(REPO)}/ (items.csv, interactions.csv) with {DEMO_CONFIG.relative_to(REPO)}, "
        "then print the run folder and a summary table. Re-running reuses the embedding cache.",
        epilog="then: open OUT/latest/evaluation/report.md, or serve the scheduled jobs with `rqvae-ids serve` "
        "(see docs/flows.md for the two-terminal Prefect UI recipe).",
    )
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output folder (default: out/demo)")
    add_run_args(p, catalog_required=False)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..core.errors import UserError

    items, interactions = DEMO_DATA / "items.csv", DEMO_DATA / "interactions.csv"
    if not items.is_file():
        raise UserError(f"demo catalog not found at {items}; create it with `python {DEMO_DATA / 'generate.py'}`")
    if args.config is None and DEMO_CONFIG.is_file():
        args.config = str(DEMO_CONFIG)
    return run_pipeline(str(items), args.out, str(interactions) if interactions.is_file() else None, args)
