"""`rqvae-ids serve`: serve the daily refresh and weekly retrain deployments on a Prefect server."""

from __future__ import annotations

import argparse
import os

EPILOG = """\
schedules need a running Prefect server (a temporary API never fires them):

  terminal 1:  prefect server start --host 127.0.0.1          # UI at http://127.0.0.1:4200
  terminal 2:  export PREFECT_API_URL=http://127.0.0.1:4200/api
               rqvae-ids serve --catalog items.csv --out out/shop

the output folder needs one successful run first (rqvae-ids run ... --out out/shop):
refresh reuses its frozen model and carries its IDs over. Trigger a run now with
  prefect deployment run 'refresh-ids/refresh-daily'

SIGTERM (systemd, docker stop, kubernetes) stops serve within 10 s, with or without
its server: a run in progress is stopped and marked failed, OUT/latest stays where it
was, the next scheduled run does the work; one line says what happened.

The catalog options (--format, --id-col, --text-cols, --template, --on-duplicate,
--drop-empty) and --set KEY=VALUE override the config the runs use (--config, else the
latest run's config); one left out keeps that config's value.
"""


START_SERVER = (
    "`prefect server start --host 127.0.0.1` and `export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def register(subparsers) -> None:
    from ._help import INTERACTIONS
    from .run import add_catalog_flags, add_set_flag

    p = subparsers.add_parser(
        "serve",
        help="serve the scheduled refresh (daily) and retrain (weekly) jobs on a Prefect server",
        description="Serve two Prefect deployments until interrupted: 'refresh-ids/refresh-daily' "
        "(embed new or edited items, assign with the frozen model of OUT/latest, keep every unchanged "
        "item's ID) and 'retrain/retrain-weekly' (retrain, assign, write id_mapping.parquet). Each "
        "scheduled run writes a new OUT/runs/<run-id>/ and moves OUT/latest when it succeeds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_catalog_flags(p)  # --catalog (re-read by every run) and its format/column options
    p.add_argument("--out", required=True, metavar="DIR", help="output folder with at least one successful run")
    p.add_argument("--interactions", metavar="FILE",
                   help=f"{INTERACTIONS}: the weekly retrain trains on their CF embeddings too (collaborative), "
                        "both jobs add next-item metrics; the daily refresh never trains")
    p.add_argument("--config", metavar="FILE", help="config file (default: the config of the latest run)")
    add_set_flag(p)
    p.add_argument("--refresh-cron", default="0 3 * * *", metavar="CRON",
                   help='refresh schedule (default "0 3 * * *": daily 03:00); "" for on demand only')
    p.add_argument("--retrain-cron", default="0 4 * * 0", metavar="CRON",
                   help='retrain schedule (default "0 4 * * 0": Sundays 04:00); "" for on demand only')
    p.add_argument("--refresh-every", type=float, metavar="SECONDS",
                   help="refresh on an interval instead of the cron (demos and tests)")
    p.add_argument("--retrain-every", type=float, metavar="SECONDS", help="retrain on an interval instead of the cron")
    p.add_argument("--timezone", metavar="TZ", help="time zone of the cron schedules, e.g. Europe/Berlin (default UTC)")
    p.add_argument("--dask-address", metavar="ADDR",
                   help="shard the runs' embedding over this existing Dask cluster, e.g. tcp://10.0.0.5:8786 "
                        "(same as the overrides dask.enabled=true, dask.address=ADDR)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.io import require_file
    from ..pipeline.config import load_pipeline_config, run_config
    from ..pipeline.runs import require_latest
    from .run import config_overrides

    require_file(args.catalog, "catalog")
    latest = require_latest(args.out)
    overrides = config_overrides(args)
    if args.dask_address:
        overrides.update({"dask.enabled": True, "dask.address": args.dask_address})
    if args.config is not None:  # the config the runs will use, checked now: one line, not a failed run
        load_pipeline_config(args.config, overrides)
    else:
        run_config(latest, overrides)
    from flows.runtime import configured_api_url, prefect_env, require_prefect_server

    prefect_env()
    api_url = configured_api_url()
    if not api_url:
        raise UserError(
            "no Prefect server configured: schedules only fire against a running server. Start one with "
            f"{START_SERVER}"
        )
    require_prefect_server(f"start one with {START_SERVER}, or point PREFECT_API_URL at a running one")
    import httpx

    from flows.deployments import build_deployments, serve_deployments

    deployments = build_deployments(
        os.path.abspath(args.catalog),
        os.path.abspath(args.out),
        interactions=os.path.abspath(args.interactions) if args.interactions else None,
        config=os.path.abspath(args.config) if args.config else None,
        overrides=overrides or None,
        refresh_cron=args.refresh_cron or None,
        retrain_cron=args.retrain_cron or None,
        refresh_every=args.refresh_every,
        retrain_every=args.retrain_every,
        timezone=args.timezone,
    )
    from flows.served import SERVE_LINES

    os.environ[SERVE_LINES] = "1"  # inherited by the flow-run processes: a line per run on this console
    print(f"serving {', '.join(d.name for d in deployments)} against {api_url} (Ctrl-C or SIGTERM to stop)",
          flush=True)
    try:
        serve_deployments(deployments, out=args.out)  # prints the stop line
    except httpx.ConnectError as e:  # the server went away (or was never there) once serving began
        raise UserError(
            f"cannot reach the Prefect server at {api_url} ({e}); start one with {START_SERVER}"
        ) from None
    return 0
