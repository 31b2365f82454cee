"""`retrain`: the weekly job. Retrain the tokenizer, assign fresh IDs, map old IDs to new.

A new model gives new codes, so IDs are not carried over; `id_mapping.parquet`
(item_id, old_sid, new_sid, changed) tells downstream systems what moved. With
interactions the model is trained on their CF embeddings too (the pipeline's default).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import served, tasks
from rqvae_ids.core.config import to_dict
from rqvae_ids.pipeline import runs
from rqvae_ids.pipeline.stages import SEMANTIC_IDS


@flow(name="retrain", log_prints=False, **served.HOOKS)
def retrain(
    catalog: str,
    out: str,
    interactions: str | None = None,
    config: str | None = None,
    wait: bool = True,
    overrides: dict[str, Any] | None = None,
) -> str:
    """Retrain on the current `catalog`, assign IDs, write id_mapping.parquet against `OUT/latest`.

    config: defaults to the config the latest run was made with.
    """
    cfg = tasks.latest_config(out, config, overrides)
    with runs.open_run(out, "retrain", to_dict(cfg), wait=wait, timeout_s=cfg.run.lock_timeout_s) as run:
        run_dir = str(run.dir)
        previous = tasks.find_latest(out)  # under the lock: the run this one builds on
        items = run.record("ingest", tasks.ingest(catalog, run_dir, cfg.catalog))["path"]
        embeddings = run.record("embed", tasks.embed_stage(items, run_dir, cfg))["path"]
        cf = tasks.train_inputs(interactions, embeddings, run_dir, cfg, run)  # collaborative, as the first run
        model_dir = run.record("train", tasks.train(embeddings, run_dir, cfg.train, cf))["path"]
        new_ids = run.record("assign", tasks.assign(model_dir, embeddings, run_dir, cfg.ids))["path"]
        run.record("id_mapping", tasks.id_mapping(f"{previous}/{SEMANTIC_IDS}", new_ids, run_dir))
        if cfg.evaluate.enabled:
            run.record("evaluate", tasks.evaluate(run_dir, cfg.evaluate, interactions))
    tasks.publish_artifacts(run_dir, "Semantic IDs retrain", "semantic-ids-retrain")
    return run_dir
