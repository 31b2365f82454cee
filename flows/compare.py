"""`compare_baselines`: RQ-VAE against its baselines on one catalog, one task per model.

The model tasks are submitted together, so the task runner runs them in
parallel (threads by default; `compare_baselines.with_options(task_runner=
dask_runner(...))` spreads them over a Dask cluster). Every model gets the same
embeddings, levels, codebook size, seed and epochs. Outputs in `out`:
comparison.parquet, comparison.json, report.md, plots, models/, ids/.

Model tasks hand back `ModelIds` (codes, and reconstructions for the recon
metrics) rather than paths: they are consumed once by the evaluation task, and
`NO_CACHE` keeps Prefect from hashing them.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows import tasks
from rqvae_ids.config import from_dict
from rqvae_ids.compare.config import MODEL_KINDS, CompareConfig
from rqvae_ids.compare import steps as compare


@task(name="train and assign", task_run_name="train and assign {kind}", cache_policy=NO_CACHE)
def build_model(kind: str, embeddings: str, out: str, cfg: CompareConfig) -> Any:
    """Train one tokenizer kind and assign its IDs (a UserError becomes a note)."""
    return compare.build_one(kind, embeddings, out, cfg)


@task(name="evaluate and write comparison", cache_policy=NO_CACHE)
def write_comparison(out: str, items: str, embeddings: str, built: list[Any], cfg: CompareConfig,
                     interactions: str | None) -> dict[str, Any]:  # fmt: skip
    """Same metrics for every model; comparison.parquet, report.md and plots."""
    return compare.write_comparison(out, items, embeddings, built, cfg, interactions)


@flow(name="compare-baselines")
def compare_baselines(
    catalog: str,
    out: str,
    interactions: str | None = None,
    models: list[str] = list(MODEL_KINDS),
    levels: int = 3,
    codebook_size: int = 256,
    epochs: int | None = None,
    seed: int = 0,
    config: str | None = None,
) -> str:
    """Compare tokenizers on `catalog`; returns the path of report.md.

    config: pipeline config file whose catalog and embed sections apply (the models
    share levels, codebook_size, epochs and seed given here).
    """
    cfg = tasks.load_config(out, config)
    knobs = {"models": models, "levels": levels, "codebook_size": codebook_size, "epochs": epochs, "seed": seed}
    cmp_cfg = from_dict(CompareConfig, knobs, where="compare")
    items = tasks.ingest(catalog, out, cfg.catalog)["path"]
    embeddings = tasks.embed(items, out, cfg.embed)["path"]
    futures = [build_model.submit(kind, embeddings, out, cmp_cfg) for kind in cmp_cfg.models]
    built = [f.result() for f in futures]
    write_comparison(out, items, embeddings, built, cmp_cfg, interactions)
    return f"{out}/report.md"
