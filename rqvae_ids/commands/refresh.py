"""`rqvae-ids refresh`: the daily refresh once, without Prefect or a server.

The same library function as the served `refresh-ids` flow
(`rqvae_ids.pipeline.refresh.refresh`): embed only new or edited texts, assign with
the frozen model of OUT/latest keeping every unchanged item's ID, move `latest`.
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
the output folder needs one successful run first (rqvae-ids run ... --out DIR): refresh
reuses its frozen model (no training) and its IDs. Each refresh writes a new
DIR/runs/<run-id>/ and moves DIR/latest to it only if every stage succeeded.

examples:
  rqvae-ids refresh --catalog items.csv --out out/shop
  rqvae-ids refresh --catalog items.csv --interactions events.csv --out out/shop   # + next-item metrics
  rqvae-ids refresh --catalog items.csv --out out/shop --set evaluate.enabled=false

The catalog options (--format, --id-col, --text-cols, --template, --on-duplicate,
--drop-empty) override the catalog section of the config (--config, else the latest
run's config); one left out keeps that config's value.
"""


def register(subparsers) -> None:
    from ._help import INTERACTIONS
    from .run import add_catalog_flags

    p = subparsers.add_parser(
        "refresh",
        help="refresh the IDs once: new/edited items get IDs from the frozen model, unchanged items keep theirs",
        description="The daily refresh once, with no Prefect server: re-read the catalog, embed only new or "
        "edited texts (the embedding cache in DIR/cache/), assign with the frozen model of DIR/latest keeping "
        "every unchanged item's ID, evaluate on bounded samples, move DIR/latest. The served 'refresh-ids' "
        "flow (rqvae-ids serve) runs the same function on a schedule.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_catalog_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder with at least one successful run")
    p.add_argument("--interactions", metavar="FILE", help=f"{INTERACTIONS}: the evaluation adds next-item metrics")
    p.add_argument("--config", metavar="FILE", help="config file (default: the config of the latest run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one knob, e.g. --set evaluate.enabled=false (repeatable)")
    p.add_argument("--wait", action="store_true",
                   help="if another run holds the output folder, wait for it instead of failing")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import time

    from ..core.config import parse_set
    from ..core.io import check_out_dir, require_file
    from ..pipeline import progress
    from ..pipeline.config import PipelineConfig
    from ..pipeline.refresh import refresh, refresh_config
    from .run import catalog_overrides, interrupted_message, print_run

    check_out_dir(args.out)
    require_file(args.catalog, "catalog")
    if args.interactions is not None:
        require_file(args.interactions, "interactions")
    overrides = {**catalog_overrides(args), **parse_set(args.overrides, PipelineConfig)}
    cfg = refresh_config(args.out, args.config, overrides)  # a bad config or no latest run: one line, nothing written
    start = time.perf_counter()
    progress.enable("refresh")
    try:
        run_dir = refresh(args.catalog, args.out, args.interactions, cfg, wait=args.wait)
    except KeyboardInterrupt:
        print(interrupted_message(args.out), file=sys.stderr)
        return 130
    finally:
        progress.disable()
    print_run(str(run_dir), time.perf_counter() - start)
    return 0
