"""Prefect tasks shared by the flows: each calls one `rqvae_ids.pipeline` function.

Tasks pass paths and small config objects, never arrays; `cache_policy=NO_CACHE`
because every output is a file in a run folder (re-running a stage is governed
by the embedding cache, not by Prefect's input hashing). Stages that only read
or write files retry on failure; a `UserError` (bad input) never retries, and
compute stages (train, evaluate) do not retry at all: a rerun gives the same
result.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from rqvae_ids.core.errors import UserError
from rqvae_ids.models.kinds import fitted_by
from rqvae_ids.pipeline import config as pipeline_config
from rqvae_ids.pipeline import runs, sharding, stages, summary
from rqvae_ids.pipeline.refresh import refresh_config
from rqvae_ids.pipeline.config import (
    CatalogOptions,
    DaskOptions,
    EvaluateOptions,
    IdsOptions,
    PipelineConfig,
)


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O hiccups; bad input (UserError) fails at once: a rerun cannot fix it."""
    return not isinstance(getattr(state, "data", None), UserError)


IO = dict(retries=2, retry_delay_seconds=3, retry_condition_fn=_retry_unless_user_error, cache_policy=NO_CACHE)


@task(name="load config", cache_policy=NO_CACHE)
def load_config(out: str, path: str | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Validate the config file (defaults where absent); the embedding cache lives in OUT/cache/."""
    cfg = pipeline_config.load_pipeline_config(path, overrides)
    return pipeline_config.with_embed_cache(cfg, Path(out) / "cache" / "embedding_cache.parquet")


@task(name="read config of latest run", cache_policy=NO_CACHE)
def latest_config(out: str, path: str | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The config file if given, else the resolved config the `latest` run was made with (+ overrides)."""
    return refresh_config(out, path, overrides)


@task(name="find latest run", **IO)
def find_latest(out: str) -> str:
    """The folder `OUT/latest` points at (the previous successful run)."""
    return str(runs.require_latest(out))


@task(name="ingest catalog", **IO)
def ingest(catalog: str, run_dir: str, opts: CatalogOptions) -> dict[str, Any]:
    """Read and validate the catalog into items.parquet."""
    report = stages.ingest(catalog, run_dir, opts)
    get_run_logger().info("catalog %s: %d items", catalog, report["items"])
    return report


@task(name="embed items (cached)", **IO)
def embed(items: str, run_dir: str, cfg) -> dict[str, Any]:
    """Embed item texts; only new or edited texts go through the model."""
    report = stages.embed(items, run_dir, cfg)
    get_run_logger().info("embedded %d items: %d encoded, %d from cache", report["items"], report["encoded"], report["cached"])
    return report


@task(name="plan embedding shards", **IO)
def plan_shards(items: str, out_dir: str, cfg, shard_size: int) -> list[str]:
    """Split the texts missing from the cache into shard files."""
    paths = sharding.plan_shards(items, out_dir, cfg, shard_size)
    get_run_logger().info("%d shard(s) of at most %d texts to encode", len(paths), shard_size)
    return paths


@task(name="encode shard", task_run_name="encode {shard_path}", **IO)
def encode_shard(shard_path: str, cfg) -> str:
    """Encode one shard on a worker; returns the path of its vectors."""
    return sharding.encode_shard(shard_path, cfg)


@task(name="merge shards into embeddings", **IO)
def merge_shards(items: str, vector_paths: list[str], out_dir: str, cfg) -> dict[str, Any]:
    """Add shard vectors to the cache and write embeddings.parquet in catalog order."""
    return sharding.merge_shards(items, vector_paths, out_dir, cfg)


def embed_stage(items: str, run_dir: str, cfg: PipelineConfig) -> dict[str, Any]:
    """The embed stage of every flow: one task, or sharded over Dask (a subflow with the cluster's
    DaskTaskRunner) when the config's `dask.enabled` is set (`dask.address`: an existing cluster)."""
    if cfg.dask.enabled:
        from flows.embed_sharded import sharded_flow

        return sharded_flow(cfg.dask)(items, run_dir, cfg.embed, cfg.dask.shard_size)
    return embed(items, run_dir, cfg.embed)


class RefreshSteps:
    """The stage functions `rqvae_ids.pipeline.refresh.refresh` calls, as this module's Prefect tasks
    (the embed stage sharded over Dask when the config says so)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.ingest, self.copy_model, self.assign, self.evaluate = ingest, copy_model, assign, evaluate

    def embed(self, items: str, run_dir: str, embed_cfg) -> dict[str, Any]:
        return embed_stage(items, run_dir, replace(self.cfg, embed=embed_cfg))


@task(name="collaborative embeddings", cache_policy=NO_CACHE)
def cf_embeddings(interactions: str, embeddings: str, run_dir: str, cfg) -> dict[str, Any]:
    """CF embeddings of the items from the interactions' training part (beside the model)."""
    report = stages.cf_embeddings(interactions, embeddings, run_dir, cfg)
    logger = get_run_logger()
    for note in report["interactions"].get("notes", []):
        logger.warning(note)
    logger.info("CF embeddings for %d of %d items", report["items_with_cf"], report["items"])
    return report


def train_inputs(interactions: str | None, embeddings: str, run_dir: str, cfg: PipelineConfig, run) -> str | None:
    """The CF embeddings training reads (recorded as the run's "cf" stage), or None: text-only
    training without interactions or with cf.enabled false."""
    if interactions is None or not cfg.cf.enabled:
        return None
    return run.record("cf", cf_embeddings(interactions, embeddings, run_dir, cfg.cf.embedding))["path"]


@task(name="train tokenizer", cache_policy=NO_CACHE)
def train(embeddings: str, run_dir: str, cfg, cf: str | None = None) -> dict[str, Any]:
    """Train the configured tokenizer kind on the embeddings (default auto: rqkmeans-cf with `cf`,
    rqkmeans without; see rqvae_ids.models.kinds); with `cf`, collaboratively."""
    report = stages.train(embeddings, run_dir, cfg, cf)
    get_run_logger().info("trained %s in %.1f s (%s)", report.get("kind"), report.get("seconds", 0),
                          fitted_by(report.get("kind"), report.get("epochs")))
    return report


@task(name="reuse frozen model", **IO)
def copy_model(model_dir: str, run_dir: str) -> dict[str, Any]:
    """Copy an already trained model into the run folder."""
    return stages.copy_model(model_dir, run_dir)


@task(name="assign semantic IDs", **IO)
def assign(model_dir: str, embeddings: str, run_dir: str, opts: IdsOptions, previous: str | None = None) -> dict[str, Any]:
    """Encode, check collisions, resolve them; keep unchanged items' IDs when `previous` is given."""
    report = stages.assign(model_dir, embeddings, run_dir, opts, previous)
    coll = report.get("collisions", {})
    get_run_logger().info("assigned %d IDs: duplicate_rate %.4f, colliding_share %.4f, largest group %s",
                          report["items"], coll.get("duplicate_rate", 0), coll.get("colliding_share", 0),
                          coll.get("largest_group"))
    return report


@task(name="map old IDs to new", **IO)
def id_mapping(old_ids: str, new_ids: str, run_dir: str) -> dict[str, Any]:
    """Write id_mapping.parquet against the previous run."""
    report = stages.id_mapping(old_ids, new_ids, run_dir)
    get_run_logger().info("%d of %d items changed ID", report["changed"], report["items_common"])
    return report


@task(name="evaluate IDs", cache_policy=NO_CACHE)
def evaluate(run_dir: str, opts: EvaluateOptions, interactions: str | None = None) -> dict[str, Any]:
    """ID quality, neighbour recall and next-item retrieval; writes evaluation/."""
    return stages.evaluate(run_dir, opts, interactions)


@task(name="publish summary artifacts", **IO)
def publish_artifacts(run_dir: str, title: str, key: str) -> str:
    """A markdown summary and a metrics table in the Prefect UI; the summary text is returned."""
    markdown = summary.markdown_summary(run_dir, title)
    create_markdown_artifact(markdown, key=f"{key}-summary", description=f"{title}: {Path(run_dir).name}")
    records = summary.metrics_records(run_dir)
    if records:
        create_table_artifact(records, key=f"{key}-metrics", description="evaluation metrics (this model and baselines)")
    return markdown


__all__ = [
    "DaskOptions",
    "RefreshSteps",
    "embed_stage",
    "assign",
    "cf_embeddings",
    "copy_model",
    "embed",
    "encode_shard",
    "evaluate",
    "find_latest",
    "id_mapping",
    "ingest",
    "latest_config",
    "load_config",
    "merge_shards",
    "plan_shards",
    "publish_artifacts",
    "train",
    "train_inputs",
]
