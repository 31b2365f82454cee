"""`refresh_ids`: the daily job. New and edited items get IDs; every unchanged item keeps its ID.

Re-reads the catalog, embeds only texts missing from the shared cache, assigns
with the frozen model of `OUT/latest` (copied into the new run) and carries the
previous IDs of unchanged items over (`assign_ids(previous=...)`), then
publishes the run as the new `latest`. No training: a new item's ID comes from its
text alone (the model's encoder reads text; rqkmeans-cf uses the CF embeddings copied
with the model for the items that have one, text for new items). `interactions`
only feeds the evaluation.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import served, tasks
from rqvae_ids.config import to_dict
from rqvae_ids.pipeline import runs
from rqvae_ids.pipeline.stages import MODEL, SEMANTIC_IDS


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
    job waits for a running job on the same folder rather than failing.
    """
    cfg = tasks.latest_config(out, config, overrides)
    with runs.open_run(out, "refresh", to_dict(cfg), wait=wait, timeout_s=cfg.run.lock_timeout_s) as run:
        run_dir = str(run.dir)
        previous = tasks.find_latest(out)  # under the lock: the run this one builds on
        items = run.record("ingest", tasks.ingest(catalog, run_dir, cfg.catalog))["path"]
        embeddings = run.record("embed", tasks.embed(items, run_dir, cfg.embed))["path"]
        model_dir = run.record("model", tasks.copy_model(f"{previous}/{MODEL}", run_dir))["path"]
        run.record("assign", tasks.assign(model_dir, embeddings, run_dir, cfg.ids, f"{previous}/{SEMANTIC_IDS}"))
        if cfg.evaluate.enabled:
            run.record("evaluate", tasks.evaluate(run_dir, cfg.evaluate, interactions))
    tasks.publish_artifacts(run_dir, "Semantic IDs refresh", "semantic-ids-refresh")
    return run_dir
