"""The pipeline's stages as plain library functions: paths in, small report dicts out.

Each Prefect task in `flows/` calls exactly one of these; the same functions run
the pipeline without Prefect (`bench/pipeline.py` times both). Every stage
writes into a run folder (see `runs.py`):

    items.parquet          ingest: item_id, text, category in catalog order
    embeddings.parquet     embed (+ embed_report.json, embed_config.json)
    model/                 train (or a copy of a frozen model for refresh)
    semantic_ids.parquet   assign (+ tokens.txt, collisions.parquet, collision_report.json, assign_report.json)
    id_mapping.parquet     retrain only: old -> new ID of every item
    evaluation/            comparison.parquet, comparison.json, report.md, plots
    run_report.json        every stage's report, written when the run succeeded
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog.items import read_items
from ..io import sha256_file, write_parquet_atomic
from .config import CatalogOptions, EvaluateOptions, IdsOptions

ITEMS = "items.parquet"
EMBEDDINGS = "embeddings.parquet"
MODEL = "model"
SEMANTIC_IDS = "semantic_ids.parquet"
ID_MAPPING = "id_mapping.parquet"
EVALUATION = "evaluation"


def _items_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("category", pa.string()),
        ]
    )


def ingest(catalog_path: str | os.PathLike, run_dir: str | os.PathLike, opts: CatalogOptions) -> dict[str, Any]:
    """Read and validate the catalog; write `run_dir/items.parquet` (the text each item is embedded by)."""
    from ..catalog import load_catalog

    catalog = load_catalog(catalog_path, **opts.kwargs())
    categories = catalog.categories or [None] * len(catalog.item_ids)
    table = pa.Table.from_pydict(
        {"item_id": catalog.item_ids, "text": catalog.texts, "category": categories}, schema=_items_schema()
    )
    path = Path(run_dir) / ITEMS
    source = os.fspath(catalog_path)
    write_parquet_atomic(table, path, {"source": source, "catalog_sha256": sha256_file(catalog_path)})
    return {
        "items": len(catalog.item_ids),
        "source": source,
        "format": catalog.fmt,
        "dropped_empty": catalog.dropped_empty,
        "dropped_duplicates": catalog.dropped_duplicates,
        "has_categories": catalog.categories is not None,
        "path": str(path),
    }


def embed(items_path: str | os.PathLike, run_dir: str | os.PathLike, cfg) -> dict[str, Any]:
    """Embed every item (cache hits are not re-encoded); writes `run_dir/embeddings.parquet`.

    cfg: EmbedConfig; its `cache` is shared between runs (the pipeline sets OUT/cache/).
    """
    from ..embed import embed_items
    from ..io import read_parquet_metadata

    item_ids, texts, _ = read_items(items_path)
    source = read_parquet_metadata(items_path).get("source")
    report = embed_items(item_ids, texts, run_dir, cfg, source=source)
    return {**report, "path": str(Path(run_dir) / EMBEDDINGS)}


def train(embeddings_path: str | os.PathLike, run_dir: str | os.PathLike, cfg) -> dict[str, Any]:
    """Train the tokenizer (cfg: TrainConfig) into `run_dir/model/`."""
    from ..train import train_model

    model_dir = Path(run_dir) / MODEL
    report = train_model(embeddings_path, model_dir, cfg, progress=False)
    return {**report, "path": str(model_dir)}


def copy_model(model_dir: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Copy a frozen model into `run_dir/model/` so the run folder stands on its own.

    The copy is byte-identical, so its checkpoint hash (the key of ID stability) is unchanged.
    """
    from ..models import load_model

    src = Path(model_dir)
    load_model(src)  # missing, corrupt or truncated files: a UserError naming `model_dir`, not the copy
    dst = Path(run_dir) / MODEL
    tmp = Path(run_dir) / f".{MODEL}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("optimizer.pt"))
    os.replace(tmp, dst)
    return {"source": str(src), "path": str(dst)}


def assign(
    model_dir: str | os.PathLike,
    embeddings_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    opts: IdsOptions,
    previous: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Assign collision-free semantic IDs; with `previous`, unchanged items keep their IDs."""
    from ..ids import assign_ids

    report = assign_ids(
        model_dir, embeddings_path, run_dir, resolve=opts.resolve, previous=previous, chunk_size=opts.chunk_size
    )
    return {**report, "path": str(Path(run_dir) / SEMANTIC_IDS)}


def id_mapping(old_ids: str | os.PathLike, new_ids: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Write `run_dir/id_mapping.parquet`: each item's old and new semantic ID."""
    from ..ids import write_id_mapping

    path = Path(run_dir) / ID_MAPPING
    return {**write_id_mapping(old_ids, new_ids, path), "path": str(path)}


def evaluate(
    run_dir: str | os.PathLike, opts: EvaluateOptions, interactions: str | os.PathLike | None = None
) -> dict[str, Any]:
    """ID quality, neighbour recall and (with interactions) next-item retrieval of this run's IDs.

    Writes `run_dir/evaluation/` (comparison.parquet, comparison.json, report.md, plots).
    Returns {"metrics": {name: value} of this run's model, "baselines": {...}, "path"}.
    """
    import numpy as np
    import pandas as pd

    from ..compare.comparison import evaluate_and_write
    from ..compare.config import CompareConfig, ModelIds
    from ..ids import read_semantic_ids
    from ..models import load_model
    from ..embedding_table import read_embeddings

    run_dir = Path(run_dir)
    model_dir = run_dir / MODEL
    table = read_embeddings(run_dir / EMBEDDINGS)
    sids = read_semantic_ids(run_dir / SEMANTIC_IDS)
    codes, suffix = sids.codes_in_order(table.item_ids, where=str(run_dir))
    model = load_model(model_dir)
    recon = np.asarray(model.decode_codes(codes), dtype=np.float32)
    metrics_path = model_dir / "metrics.parquet"
    losses = pd.read_parquet(metrics_path) if metrics_path.is_file() else None
    name = model.kind
    _, _, categories = read_items(run_dir / ITEMS)
    categories = categories if any(categories) else None
    cfg = CompareConfig(
        models=(name,),
        levels=model.levels,
        codebook_size=model.codebook_size,
        seed=opts.seed,
        max_history=opts.max_history,
        neighbour_queries=min(opts.neighbour_queries, len(table)),
    )
    split = None
    if interactions is not None:
        from ..evaluate.sequences import leave_one_out, load_interactions

        users, seqs, order = load_interactions(interactions, table.item_ids)
        split = leave_one_out(users, seqs, opts.max_history, order_column=order)
    out = run_dir / EVALUATION
    summary = evaluate_and_write(
        out,
        table.vectors,
        [ModelIds(name, codes, suffix, recon, losses)],
        cfg,
        categories=categories,
        split=split,
        command=f"rqvae-ids run  # evaluate stage of pipeline run {run_dir.name}; settings in {run_dir / 'config.json'}",
        progress=lambda msg: None,
        extra_config={"embedding_model": table.model, "n_items": len(table)},
    )
    metrics = summary["metrics"]
    return {
        "model": name,
        "metrics": metrics.get(name, {}),
        "baselines": {k: v for k, v in metrics.items() if k != name},
        "path": str(out),
    }
