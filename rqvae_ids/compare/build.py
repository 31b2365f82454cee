"""Building each compared model's IDs: train (or reuse) the tokenizer, assign resolved IDs.

Rows and the training kinds behind them (`ROW_KINDS`): `rqvae` is the collaborative
RQ-VAE whenever the comparison has interactions (the InfoNCE term of rqvae_ids/train/
on the CF embeddings of the harness's training part, reading [text, alpha * CF] since
issue 25), else the text-only one;
`rqvae-text` is always text only; `rqkmeans-cf` is residual k-means on [text, alpha * CF].
Every other kind trains on the text embeddings alone, as before.

CF embeddings are built once per comparison (`compare_cf`) and cached in OUT/cf/.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.config import to_dict
from ..core.embedding_table import EmbeddingTable, read_embeddings
from ..core.errors import UserError
from ..evaluate.model_ids import read_model_ids
from ..evaluate.random_ids import random_codes
from ..core.io import read_json_or_none, sha256_file, sha256_text, write_json_atomic
from .config import CF_ROWS, CompareConfig, ModelIds

# row name -> tokenizer kind trained for it (rows not listed train their own kind).
ROW_KINDS = {"rqvae-text": "rqvae"}
# rows that learn from the CF embeddings when the comparison has them.
USES_CF = ("rqvae", "rqkmeans-cf")
# map_models(build, kinds) -> [build(kind) for kind in kinds], in any order of running (the
# compare-baselines flow: one Prefect task per kind); a build returns ModelIds or the UserError.
MapModels = Callable[[Callable[[str], Any], list[str]], list[Any]]


@dataclass(frozen=True)
class Embeddings:
    """The comparison's embeddings, read once: the file (its path and sha256, the key of every
    model's reuse marker) and its table, handed to every model's training and assignment."""

    path: Path
    table: EmbeddingTable
    sha256: str

    @classmethod
    def read(cls, path: Path) -> "Embeddings":
        return cls(Path(path), read_embeddings(path), sha256_file(path))


def rows_without_interactions(models) -> tuple[tuple[str, ...], str | None]:
    """(the rows a comparison without interactions builds, the report note on those it leaves
    out or None): without interactions `rqvae` is the text model, so `rqvae-text` would repeat
    it, and `rqkmeans-cf` has no collaborative signal to add."""
    skipped = [m for m in models if m in CF_ROWS]
    if not skipped:
        return tuple(models), None
    note = (f"{', '.join(skipped)} left out: no interactions given (--interactions), so there are no CF embeddings; "
            "`rqvae` is then the text-only RQ-VAE (the collaborative rows need interactions).")
    return tuple(m for m in models if m not in CF_ROWS), note


def compare_cf(interactions: Path, item_ids, split, out_dir: Path, cfg: CompareConfig, cold=None):
    """The CF embeddings (cf.CFTable, rows in `item_ids` order) of the comparison's split.

    Without cold items: cf.build_cf_table on the interactions' leave-one-out training part
    (the harness's split; no validation or test target is seen), cached as
    OUT/cf/cf_embeddings.parquet. With --cold-items the split's training part has the cold
    items removed, so the CF embeddings are computed from it (in memory, seconds): cold items
    get none and no other item learns from sequences that held them.
    """
    from ..cf import CF_FILE, CFConfig, CFTable, build_cf_table, catalog_sha256, cf_vectors

    cf_cfg = CFConfig(max_history=cfg.max_history, seed=cfg.seed)
    if cold is None:
        (out_dir / "cf").mkdir(parents=True, exist_ok=True)
        return build_cf_table(interactions, item_ids, out_dir / "cf" / CF_FILE, cf_cfg)
    vectors, has = cf_vectors(split.train, len(item_ids), cf_cfg)
    meta = {"interactions_sha256": sha256_file(interactions), "catalog_sha256": catalog_sha256(item_ids),
            "cf": to_dict(cf_cfg), "cold_sha256": sha256_text(",".join(map(str, np.sort(cold)))),
            "items_total": len(item_ids), "items_with_cf": int(has.sum())}
    return CFTable(vectors, has, meta)


def build_models(cfg: CompareConfig, embeddings: Embeddings, out_dir: Path, progress: Callable[[str], None],
                 map_models: MapModels | None = None, cf=None) -> tuple[list[ModelIds], list[str], list[str]]:
    """(built ModelIds, notes, failed kinds) of every kind in cfg.models; one failing model (e.g. too
    many collisions) becomes a note rather than hiding the others. cf: the comparison's CFTable or None.
    map_models(build, kinds): runs build(kind) for every kind (default: one after the other)."""
    def build(kind: str) -> ModelIds | UserError:
        progress(f"{kind} ({cfg.models.index(kind) + 1}/{len(cfg.models)}): train + assign IDs")
        try:
            return build_model_ids(kind, embeddings, out_dir, cfg, cf=cf)
        except UserError as e:
            progress(f"{kind}: FAILED: {e}")
            return e

    built = (map_models or (lambda fn, kinds: [fn(k) for k in kinds]))(build, list(cfg.models))
    model_ids = [b for b in built if isinstance(b, ModelIds)]
    failed = [k for k, b in zip(cfg.models, built) if not isinstance(b, ModelIds)]
    notes = [f"{k} left out: {b}" for k, b in zip(cfg.models, built) if not isinstance(b, ModelIds)]
    if not model_ids:
        raise UserError("every model failed: " + "; ".join(notes))
    return model_ids, notes, failed


def build_model_ids(kind: str, embeddings: Embeddings, work_dir: Path, cfg: CompareConfig, cf=None) -> ModelIds:
    """Train the row `kind` (or draw random IDs), assign resolved IDs; codes in embeddings row order.
    cf: the comparison's CFTable (used by the `USES_CF` rows) or None."""
    start = time.perf_counter()
    n_items = len(embeddings.table)
    if kind == "random":
        codes = random_codes(n_items, cfg.levels, cfg.codebook_size, cfg.seed)
        return ModelIds("random", codes, np.zeros(n_items, np.int64), seconds=time.perf_counter() - start)
    cf = cf if kind in USES_CF else None
    model_dir, ids_dir = work_dir / "models" / kind, work_dir / "ids" / kind
    info = train_and_assign(kind, embeddings, model_dir, ids_dir, cfg, cf)
    ids = read_model_ids(model_dir, ids_dir / "semantic_ids.parquet", embeddings.table.item_ids, name=kind, where=kind)
    ids.seconds = time.perf_counter() - start
    ids.info.update(info)
    return ids


def train_and_assign(kind: str, embeddings: Embeddings, model_dir: Path, ids_dir: Path, cfg: CompareConfig,
                     cf) -> dict[str, Any]:
    """Train the row's tokenizer into model_dir and write its suffix-resolved IDs into ids_dir,
    unless an earlier run into the same --out left them with the same key ({"reused": ...}).
    A CF-reading row (rqkmeans-cf) is coded from [text, alpha * CF] where an item has a CF
    embedding, from its text alone elsewhere (`ids.assign.inputs_with_cf`)."""
    from ..ids.assign import assign_ids_from_table
    from ..models import MODELS
    from ..train import cf_meta, config_from_args, train_model

    # The same budget for every kind: levels, codebook size, seed and epochs; the rest are
    # TrainConfig/ModelConfig defaults (saved in each model's config.json).
    train_cfg = config_from_args(kind=ROW_KINDS.get(kind, kind), levels=cfg.levels, codebook_size=cfg.codebook_size,
                                 seed=cfg.seed, epochs=cfg.epochs)
    # Reruns into the same --out reuse a model trained with the same config on the same data.
    key = {"train": to_dict(train_cfg), "embeddings_sha256": embeddings.sha256}
    if cf is not None:  # with the cold rule `auto` stands for: IDs made under another default are not reused
        cold = MODELS[train_cfg.model.kind].cold_rule(train_cfg.model)
        key["cf"] = {**cf_meta(cf), "cold_sha256": cf.metadata.get("cold_sha256"), "cold_rule": cold}
    marker = ids_dir / "compare_key.json"
    if read_json_or_none(marker) == json.loads(json.dumps(key)) and (ids_dir / "semantic_ids.parquet").is_file():
        return {"reused": str(model_dir)}
    train_model(embeddings.path, model_dir, train_cfg, progress=False, cf=cf, table=embeddings.table)
    reads_cf = cf is not None  # rqkmeans-cf, and rqvae with CF (issue 25): text ⊕ α·CF inputs
    config = {"model_dir": str(model_dir), "embeddings": str(embeddings.path), "out_dir": str(ids_dir),
              "resolve": "suffix", **({"inputs": "text + cf_alpha * CF"} if reads_cf else {})}
    assign_ids_from_table(model_dir, embeddings.table, ids_dir, resolve="suffix", cf=cf if reads_cf else None,
                          config=config)
    write_json_atomic(marker, key)
    return {}
