"""`semantic_ids_pipeline`: catalog -> embeddings -> tokenizer -> semantic IDs -> evaluation.

One run writes `OUT/runs/<run-id>/` under the output folder's lock and, only if
every stage succeeded, repoints `OUT/latest` at it (see rqvae_ids/pipeline/runs.py).
A failed run keeps its folder, marked failed (status.json + FAILED), and the
previous `latest`. The embedding cache in `OUT/cache/` is shared by all runs.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import tasks
from rqvae_ids.core.config import to_dict
from rqvae_ids.pipeline import runs


@flow(name="semantic-ids-pipeline", log_prints=False)
def semantic_ids_pipeline(
    catalog: str,
    out: str,
    interactions: str | None = None,
    config: str | None = None,
    model: str | None = None,
    wait: bool | None = None,
    overrides: dict[str, Any] | None = None,
) -> str:
    """Build semantic IDs for `catalog` into a new run of `out`; returns the run folder.

    interactions: user-item log (optional): training reads its CF embeddings (collaborative model,
    unless cf.enabled is false) and evaluation its next-item metrics.
    config: pipeline config file (YAML/TOML); overrides: dotted keys, e.g. {"train.epochs": 5}.
    model: a trained model folder to reuse instead of training.
    wait: wait for a concurrent run on `out` to finish instead of failing (default: config run.wait_for_lock).
    """
    cfg = tasks.load_config(out, config, overrides)
    wait = cfg.run.wait_for_lock if wait is None else wait
    with runs.open_run(out, "pipeline", to_dict(cfg), wait=wait, timeout_s=cfg.run.lock_timeout_s) as run:
        run_dir = str(run.dir)
        items = run.record("ingest", tasks.ingest(catalog, run_dir, cfg.catalog))["path"]
        embeddings = run.record("embed", tasks.embed_stage(items, run_dir, cfg))["path"]
        if model is None:
            cf = tasks.train_inputs(interactions, embeddings, run_dir, cfg, run)
            model_dir = run.record("train", tasks.train(embeddings, run_dir, cfg.train, cf))["path"]
        else:
            model_dir = run.record("model", tasks.copy_model(model, run_dir))["path"]
        run.record("assign", tasks.assign(model_dir, embeddings, run_dir, cfg.ids))
        if cfg.evaluate.enabled:
            run.record("evaluate", tasks.evaluate(run_dir, cfg.evaluate, interactions))
    tasks.publish_artifacts(run_dir, "Semantic IDs pipeline", "semantic-ids")
    return run_dir
