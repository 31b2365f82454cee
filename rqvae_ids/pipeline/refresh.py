"""The daily refresh, once: new and edited items get IDs, every unchanged item keeps its ID.

One function, two callers: `rqvae-ids refresh` runs it directly (no Prefect, no server),
and the served `refresh-ids` flow (flows/refresh.py) runs it with each stage wrapped in
its Prefect task (`steps=flows.tasks`). Either way the run:

- re-reads the catalog (ingest),
- embeds only the texts missing from the shared cache (OUT/cache/: unchanged texts are
  read back, new and edited ones encoded),
- copies the frozen model of `OUT/latest` (no training: a new item's ID comes from its
  text; rqkmeans-cf uses the CF embeddings copied with the model for the items that have one),
- assigns with it, carrying every unchanged item's previous ID over (`previous=`),
- evaluates on the bounded samples of the evaluate stage (optional),
- and moves `OUT/latest` atomically when every stage succeeded (`runs.open_run`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.config import to_dict
from . import runs, stages
from .config import PipelineConfig, load_pipeline_config, run_config, with_embed_cache
from .stages import MODEL, SEMANTIC_IDS


def refresh_config(out: str | os.PathLike, path: str | os.PathLike | None = None,
                   overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The config file if given (its embedding cache defaulting to OUT/cache/), else the resolved
    config the `latest` run was made with; `overrides` (dotted keys) on top of either."""
    if path is not None:
        cfg = load_pipeline_config(path, overrides)
        return with_embed_cache(cfg, Path(out) / "cache" / "embedding_cache.parquet")
    return run_config(runs.require_latest(out), overrides)


def refresh(
    catalog: str | os.PathLike,
    out: str | os.PathLike,
    interactions: str | os.PathLike | None = None,
    cfg: PipelineConfig | None = None,
    *,
    wait: bool = True,
    steps: Any = stages,
) -> Path:
    """Refresh the IDs of `out` for the current `catalog`; returns the new run folder (now `latest`).

    cfg: default `refresh_config(out)`. wait: wait for a run holding `out` instead of failing.
    steps: where the stage functions come from (`ingest`, `embed`, `copy_model`, `assign`,
    `evaluate`, with the signatures of `pipeline.stages`): the library's own by default, the
    flow's Prefect tasks in `refresh-ids`. Nothing is trained; `interactions` only feed the
    evaluation. A failure marks the run failed and leaves `latest` where it was.
    """
    cfg = cfg if cfg is not None else refresh_config(out)
    with runs.open_run(out, "refresh", to_dict(cfg), wait=wait, timeout_s=cfg.run.lock_timeout_s) as run:
        run_dir = str(run.dir)
        previous = runs.require_latest(out)  # under the lock: the run this one builds on
        items = run.record("ingest", steps.ingest(catalog, run_dir, cfg.catalog))["path"]
        embeddings = run.record("embed", steps.embed(items, run_dir, cfg.embed))["path"]
        model_dir = run.record("model", steps.copy_model(str(previous / MODEL), run_dir))["path"]
        run.record("assign", steps.assign(model_dir, embeddings, run_dir, cfg.ids, str(previous / SEMANTIC_IDS)))
        if cfg.evaluate.enabled:
            run.record("evaluate", steps.evaluate(run_dir, cfg.evaluate, interactions))
    return run.dir

