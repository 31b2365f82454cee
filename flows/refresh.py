"""`refresh_ids`: the daily job. New and edited items get IDs; every unchanged item keeps its ID.

The run itself is the library's `rqvae_ids.pipeline.refresh.refresh` (the same
function `rqvae-ids refresh` calls without a server), with each stage one of the
Prefect tasks of flows/tasks.py: re-read the catalog, embed only texts missing
from the shared cache, assign with the frozen model of `OUT/latest` carrying the
previous IDs of unchanged items over, evaluate, publish the run as `latest`.
No training; `interactions` only feeds the evaluation.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import served, tasks
from rqvae_ids.pipeline.refresh import refresh


@flow(name="refresh-ids", log_prints=False, **served.HOOKS)
def refresh_ids(
    catalog: str,
    out: str,
    interactions: str | None = None,
    config: str | None = None,
    wait: bool = True,
    overrides: dict[str, Any] | None = None,
) -> str:
    """Refresh the IDs of `out` for the current `catalog` with the latest run's frozen model.

    config: defaults to the config the latest run was made with. wait: a scheduled
    job waits for a running job on the same folder rather than failing. The run is
    `rqvae_ids.pipeline.refresh.refresh` (as `rqvae-ids refresh`), each stage a task; the
    embedding sharded over Dask with `dask.enabled` (overrides {"dask.address": ...}: a cluster).
    """
    cfg = tasks.latest_config(out, config, overrides)
    run_dir = str(refresh(catalog, out, interactions, cfg, wait=wait, steps=tasks.RefreshSteps(cfg)))
    tasks.publish_artifacts(run_dir, "Semantic IDs refresh", "semantic-ids-refresh")
    return run_dir
