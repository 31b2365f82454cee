"""Serve the scheduled jobs: `refresh-ids` (daily) and `retrain` (weekly).

    build_deployments(catalog, out, refresh_cron="0 3 * * *", retrain_cron="0 4 * * 0")
    serve_deployments(deployments)      # blocks; runs each scheduled flow run in a subprocess

Schedules only fire against a running Prefect server (`prefect server start`,
with PREFECT_API_URL pointing at it); a temporary API accepts `serve` and never
runs anything. `rqvae-ids serve` refuses to start without a configured API URL.
"""

from __future__ import annotations

from typing import Any

from flows import served
from flows.refresh import refresh_ids
from flows.retrain import retrain


def build_deployments(
    catalog: str,
    out: str,
    *,
    interactions: str | None = None,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    refresh_cron: str | None = "0 3 * * *",
    retrain_cron: str | None = "0 4 * * 0",
    refresh_every: float | None = None,
    retrain_every: float | None = None,
    timezone: str | None = None,
) -> list[Any]:
    """RunnerDeployments for refresh and retrain with their schedules and bound parameters.

    overrides: dotted config keys applied on top of the config, e.g. {"catalog.id_col": "asin"}.
    *_every (seconds) is an interval schedule used instead of the cron (demos, tests).
    A job with neither cron nor interval is deployed without a schedule (run on demand).
    """
    parameters = {"catalog": catalog, "out": out, "interactions": interactions, "config": config}
    if overrides:
        parameters["overrides"] = overrides
    deployments = []
    for flow_, name, cron, every, what in (
        (refresh_ids, "refresh-daily", refresh_cron, refresh_every, "re-embed new/edited items, keep unchanged IDs"),
        (retrain, "retrain-weekly", retrain_cron, retrain_every, "retrain the tokenizer, write id_mapping.parquet"),
    ):
        schedule: dict[str, Any] = {}
        if every is not None:
            schedule["interval"] = every
        elif cron:
            schedule["cron"] = cron
        deployments.append(
            flow_.to_deployment(
                name=name,
                parameters=parameters,
                description=f"{what}; catalog {catalog} -> {out}",
                tags=["rqvae-ids"],
                **schedule,
                **({"timezone": timezone} if timezone and "cron" in schedule else {}),
            )
        )
    return deployments


def serve_deployments(deployments: list[Any], out: str | None = None, limit: int | None = None) -> str:
    """Serve until SIGTERM or Ctrl-C; flow runs execute as subprocesses of this process.

    Stops within 10 s of SIGTERM whatever the server's state (`served.BoundedStop`): a run
    in progress is stopped and marked failed, `OUT/latest` stays where it was, and the next
    scheduled run does the work. Returns (and prints) the one line saying so.
    """
    import asyncio
    import signal

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    stop = served.BoundedStop(out)
    signal.signal(signal.SIGTERM, stop.chain(signal.getsignal(signal.SIGTERM)))  # during start-up too
    try:
        runner = Runner(pause_on_shutdown=True, limit=limit)
        for deployment in deployments:
            runner.add_deployment(deployment)
        asyncio.run(_serve(runner, stop))
    except (KeyboardInterrupt, SystemExit, TerminationSignal):
        pass
    return stop.finish()


async def _serve(runner: Any, stop: Any) -> None:
    """The runner, with our SIGTERM handler kept in front of the one it installs."""
    import asyncio

    guard = asyncio.ensure_future(stop.keep_chained())
    try:
        await runner.start()
    finally:
        guard.cancel()
