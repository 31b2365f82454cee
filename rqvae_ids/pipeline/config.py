"""The pipeline's one typed config file: every knob of every stage.

A YAML (`.yaml`/`.yml`), TOML (`.toml`) or JSON file whose top-level sections are
the stages; any key left out keeps its default, an unknown key or a wrong type
is a `UserError` naming it (`rqvae_ids.core.config.from_dict`). The sections reuse the
stages' own dataclasses, so a knob added to `TrainConfig` is a pipeline knob at
once. `configs/default.yaml` lists every knob with its default and meaning.

    catalog:   how to read the catalog (load_catalog's options)
    embed:     EmbedConfig (model, batch size, device; cache defaults to OUT/cache/)
    train:     TrainConfig (+ train.model: ModelConfig, the architecture)
    cf:        the collaborative signal training reads when interactions are given
    ids:       collision resolution
    evaluate:  ID quality, neighbour recall, next-item retrieval
    dask:      shard the embedding stage over a Dask cluster
    run:       lock behaviour
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..cf import CFConfig
from ..core.config import check, from_dict, to_dict
from ..embed import EmbedConfig
from ..core.errors import UserError
from ..ids.encode import DEFAULT_CHUNK_SIZE
from ..train import TrainConfig


@dataclass(frozen=True)
class CatalogOptions:
    """Options of `rqvae_ids.catalog.load_catalog` (see its docstring)."""

    fmt: str | None = None  # None: detect from the file (csv, tsv, jsonl, parquet, amazon, movielens)
    id_col: str = "item_id"
    text_cols: tuple[str, ...] | None = None  # None: title, brand, categories, description (those present)
    template: str | None = None  # e.g. "{title}. Brand: {brand}. {categories}"
    on_duplicate: Literal["error", "first"] = "error"
    drop_empty: bool = False

    def kwargs(self) -> dict[str, Any]:
        return to_dict(self)


@dataclass(frozen=True)
class CFOptions:
    """Collaborative training (issue 14). With interactions, the pipeline builds CF embeddings from
    their leave-one-out training part (`rqvae_ids.cf`, into model/cf_embeddings.parquet) and trains
    with them: rqkmeans-cf (the default kind `auto` then) clusters text ⊕ α·CF, rqvae reads text ⊕ α·CF
    and adds its InfoNCE term (issue 25). IDs of new items still come from their text alone (the
    model's cold CF part)."""

    enabled: bool = True  # False: train text-only even when interactions are given (they still feed evaluation)
    embedding: CFConfig = field(default_factory=CFConfig)


@dataclass(frozen=True)
class IdsOptions:
    # suffix: L+1 tokens; reassign: L tokens; balanced: exact balanced last level, L+1 tokens
    # (the suffix only tells identical texts apart)
    resolve: Literal["suffix", "reassign", "balanced"] = "suffix"
    chunk_size: int = DEFAULT_CHUNK_SIZE  # items encoded per chunk (bounds memory)

    def __post_init__(self):
        check(self.chunk_size >= 1, f"ids.chunk_size must be >= 1, got {self.chunk_size}")


@dataclass(frozen=True)
class EvaluateOptions:
    """The run's evaluation, on bounded samples so its cost per item does not grow with the catalog
    (each query ranks the whole catalog): the sizes are in the evaluate report and report.md."""

    enabled: bool = True
    max_history: int = 20  # TIGER's history truncation for next-item retrieval
    neighbour_queries: int = 2000  # items sampled as neighbour-recall queries
    max_users: int = 2000  # test users sampled for the next-item metrics (0: every user)
    tune_users: int = 500  # validation users the retrievers' knobs are tuned on
    seed: int = 0

    def __post_init__(self):
        check(self.max_history >= 1 and self.neighbour_queries >= 1, "evaluate: max_history and neighbour_queries must be >= 1")
        check(self.max_users >= 0, f"evaluate.max_users must be >= 0 (0: every user), got {self.max_users}")
        check(self.tune_users >= 1, f"evaluate.tune_users must be >= 1, got {self.tune_users}")


@dataclass(frozen=True)
class DaskOptions:
    """Shard the embedding stage over Dask workers (prefect-dask's DaskTaskRunner)."""

    enabled: bool = False
    address: str | None = None  # e.g. "tcp://scheduler:8786"; None: a local cluster
    n_workers: int = 2  # local cluster only
    threads_per_worker: int = 1  # local cluster only
    shard_size: int = 2000  # texts per task (only texts missing from the cache are sharded)

    def __post_init__(self):
        check(self.n_workers >= 1 and self.threads_per_worker >= 1, "dask: n_workers and threads_per_worker must be >= 1")
        check(self.shard_size >= 1, f"dask.shard_size must be >= 1, got {self.shard_size}")


@dataclass(frozen=True)
class RunOptions:
    wait_for_lock: bool = False  # False: a second run on the same OUT fails at once
    lock_timeout_s: float | None = None  # with wait_for_lock: give up after this long (None: forever)


@dataclass(frozen=True)
class PipelineConfig:
    catalog: CatalogOptions = field(default_factory=CatalogOptions)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cf: CFOptions = field(default_factory=CFOptions)
    ids: IdsOptions = field(default_factory=IdsOptions)
    evaluate: EvaluateOptions = field(default_factory=EvaluateOptions)
    dask: DaskOptions = field(default_factory=DaskOptions)
    run: RunOptions = field(default_factory=RunOptions)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML / TOML / JSON file into a dict (no validation)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise UserError(f"config file {p}: use .yaml, .yml, .toml or .json")
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise UserError(f"cannot parse config file {p}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {p}: the top level must be a mapping of sections")
    return data


def load_pipeline_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> PipelineConfig:
    """The validated PipelineConfig of `path` (None: `base`, else all defaults), with `overrides` applied.

    overrides: dotted keys, e.g. {"train.epochs": 5, "train.model.codebook_size": 64}.
    """
    import copy

    data = read_config_file(path) if path is not None else copy.deepcopy(base or {})
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"override {dotted}: {key} is not a section")
        node[leaf] = value
    where = Path(path).name if path is not None else "config"
    return from_dict(PipelineConfig, data, where=where)


def with_embed_cache(cfg: PipelineConfig, cache_path: str | os.PathLike) -> PipelineConfig:
    """cfg with embed.cache set to `cache_path` unless the file already names one."""
    if cfg.embed.cache is not None:
        return cfg
    return replace(cfg, embed=replace(cfg.embed, cache=os.fspath(cache_path)))


def run_config(run_dir: str | os.PathLike, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The resolved config a run folder was made with (its config.json), with `overrides` applied."""
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise UserError(f"{run_dir} has no config.json: not a pipeline run folder")
    return load_pipeline_config(None, overrides, base=json.loads(p.read_text()).get("config"))
