"""The pipeline's stages as plain library functions: paths in, small report dicts out.

Each Prefect task in `flows/` calls exactly one of these; the same functions run
the pipeline without Prefect (`bench/pipeline.py` times both). Every stage
writes into a run folder (see `runs.py`):

    items.parquet          ingest: item_id, text, category in catalog order
    embeddings.parquet     embed (+ embed_report.json, embed_config.json)
    model/cf_embeddings.parquet  cf (with interactions): the CF embeddings training reads; they stay
                           beside the model, which encodes with them (rqkmeans-cf) and travels with them
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
import pyarrow.parquet as pq

from ..catalog.items import read_items
from ..core.io import sha256_file, write_parquet_atomic
from . import progress
from .config import CatalogOptions, EvaluateOptions, IdsOptions

ITEMS = "items.parquet"
EMBEDDINGS = "embeddings.parquet"
MODEL = "model"
SEMANTIC_IDS = "semantic_ids.parquet"
CF_EMBEDDINGS = f"{MODEL}/cf_embeddings.parquet"
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
    with progress.stage("ingest", f"reading {Path(catalog_path).name}") as box:
        box["report"] = report = _ingest(catalog_path, run_dir, opts)
    return report


def _ingest(catalog_path: str | os.PathLike, run_dir: str | os.PathLike, opts: CatalogOptions) -> dict[str, Any]:
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
    from ..core.io import read_parquet_metadata

    item_ids, texts, _ = read_items(items_path)
    source = read_parquet_metadata(items_path).get("source")
    with progress.stage("embed", f"{len(item_ids)} items, texts already in the cache are not encoded") as box:
        report = embed_items(item_ids, texts, run_dir, cfg, source=source)
        box["report"] = report
    return {**report, "path": str(Path(run_dir) / EMBEDDINGS)}


def cf_embeddings(interactions: str | os.PathLike, embeddings_path: str | os.PathLike,
                  run_dir: str | os.PathLike, cfg) -> dict[str, Any]:
    """CF embeddings of the run's items (cfg: CFConfig) from the interactions' leave-one-out
    training part, into `run_dir/model/cf_embeddings.parquet`. Rows of items not in the catalog
    are dropped and counted (report `interactions.notes`); interactions with no usable sequence
    are a UserError before anything is written."""
    from ..cf import build_cf_table
    from ..core.embedding_table import read_embeddings

    path = Path(run_dir) / CF_EMBEDDINGS
    with progress.stage("cf embeddings", f"from {Path(interactions).name}, training part only") as box:
        item_ids = read_embeddings(embeddings_path, with_vectors=False).item_ids  # ids only: 1.5 GB at 1M items
        path.parent.mkdir(parents=True, exist_ok=True)
        table = build_cf_table(interactions, item_ids, path, cfg, log=progress.say)
        used = table.metadata.get("interactions") or {}
        box["report"] = report = {"items": len(item_ids), "items_with_cf": int(table.has.sum()), "dim": table.dim,
                                  "interactions_sha256": table.metadata.get("interactions_sha256"),
                                  "interactions": used, "path": str(path)}
    return report


def train(embeddings_path: str | os.PathLike, run_dir: str | os.PathLike, cfg,
          cf_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train the tokenizer (cfg: TrainConfig) into `run_dir/model/`; with `cf_path` (the run's
    cf_embeddings.parquet) collaboratively (rqkmeans-cf, the default then: text ⊕ α·CF; rqvae:
    text ⊕ α·CF and its InfoNCE term)."""
    from ..models.kinds import FITTED, resolve_kind
    from ..train import train_model

    model_dir = Path(run_dir) / MODEL
    items = pq.read_metadata(embeddings_path).num_rows
    cf = _read_cf(cf_path, embeddings_path) if cf_path is not None else None
    kind = resolve_kind(cfg.model.kind, cf is not None)
    budget = "" if kind in FITTED else f", up to {cfg.epochs} epochs"
    with_cf = f", CF embeddings for {int(cf.has.sum())}" if cf is not None else ", text only"
    with progress.stage(f"train {kind}", f"{items} items{with_cf}{budget}", kind="train") as box:
        report = train_model(embeddings_path, model_dir, cfg, progress=progress.bars(), cf=cf)
        box["report"] = report = {**report, "cf": cf is not None}
    return {**report, "path": str(model_dir)}


def _read_cf(cf_path, embeddings_path):
    from ..core.cf_table import read_cf_table
    from ..core.embedding_table import read_embeddings

    return read_cf_table(cf_path, read_embeddings(embeddings_path, with_vectors=False).item_ids)


def copy_model(model_dir: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Copy a frozen model into `run_dir/model/` so the run folder stands on its own.

    The copy is byte-identical, so its checkpoint hash (the key of ID stability) is unchanged.
    """
    from ..models import load_model

    with progress.stage("model", "copying the frozen model") as box:
        box["report"] = report = _copy_model(Path(model_dir), run_dir, load_model)
    return report


def _copy_model(src: Path, run_dir: str | os.PathLike, load_model) -> dict[str, Any]:
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

    start = "keeping unchanged items' IDs" if previous is not None else f"resolving collisions by {opts.resolve}"
    with progress.stage("assign", start) as box:
        box["report"] = report = assign_ids(
            model_dir, embeddings_path, run_dir, resolve=opts.resolve, previous=previous, chunk_size=opts.chunk_size
        )
    return {**report, "path": str(Path(run_dir) / SEMANTIC_IDS)}


def id_mapping(old_ids: str | os.PathLike, new_ids: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, Any]:
    """Write `run_dir/id_mapping.parquet`: each item's old and new semantic ID."""
    from ..ids import write_id_mapping

    path = Path(run_dir) / ID_MAPPING
    with progress.stage("id mapping", "old -> new ID of every item") as box:
        box["report"] = report = write_id_mapping(old_ids, new_ids, path)
    return {**report, "path": str(path)}


def evaluate(
    run_dir: str | os.PathLike, opts: EvaluateOptions, interactions: str | os.PathLike | None = None
) -> dict[str, Any]:
    """ID quality, neighbour recall and (with interactions) next-item retrieval of this run's IDs.

    Writes `run_dir/evaluation/` (comparison.parquet, comparison.json, report.md, plots).
    Returns {"metrics": {name: value} of this run's model, "baselines": {...}, "path"}.
    """
    start = "ID quality, neighbour recall" + (", next-item retrieval" if interactions is not None else "")
    # evaluate_and_write's steps: the model's quality, 3 retrievers with interactions, the writing.
    total = 2 + (3 if interactions is not None else 0)
    with progress.stage("evaluate", start) as box, progress.steps("evaluate", total) as step:
        box["report"] = report = _evaluate(run_dir, opts, interactions, step)
    return report


def _evaluate(run_dir, opts: EvaluateOptions, interactions, step) -> dict[str, Any]:
    from ..core.embedding_table import read_embeddings
    from ..evaluate.evaluation import EvaluationSettings, evaluate_and_write
    from ..evaluate.model_ids import read_model_ids

    run_dir = Path(run_dir)
    table = read_embeddings(run_dir / EMBEDDINGS)
    ids = read_model_ids(run_dir / MODEL, run_dir / SEMANTIC_IDS, table.item_ids, where=str(run_dir))
    levels, codebook_size = ids.info["levels"], ids.info["codebook_size"]
    _, _, categories = read_items(run_dir / ITEMS)
    categories = categories if any(categories) else None
    settings = EvaluationSettings(codebook_size=codebook_size, seed=opts.seed,
                                  neighbour_queries=min(opts.neighbour_queries, len(table)), tune_users=opts.tune_users)
    split, samples = bounded_split(interactions, table.item_ids, opts)
    samples = {"items": len(table), "neighbour_queries": settings.neighbour_queries, **samples}
    out = run_dir / EVALUATION
    # The settings recorded (comparison.json, the parquet's constant columns), as a comparison of one model.
    config = {"models": ids.name, "levels": levels, "codebook_size": codebook_size, "seed": opts.seed,
              "epochs": None, "max_history": opts.max_history, "neighbour_queries": settings.neighbour_queries,
              "tune_users": settings.tune_users, "embedding_model": table.model, "n_items": len(table),
              "eval_samples": samples}
    summary = evaluate_and_write(
        out, table.vectors, [ids], settings, config=config, categories=categories, split=split,
        command=f"rqvae-ids run  # evaluate stage of pipeline run {run_dir.name}; settings in {run_dir / 'config.json'}",
        notes=[samples_note(samples)],
        progress=step,
    )
    metrics = summary["metrics"]
    return {
        "model": ids.name,
        "metrics": metrics.get(ids.name, {}),
        "baselines": {k: v for k, v in metrics.items() if k != ids.name},
        "samples": samples,
        "path": str(out),
    }


def bounded_split(interactions, item_ids, opts: EvaluateOptions):
    """(leave-one-out split with its validation/test side cut to `opts.max_users` users, the sample
    sizes), or (None, {}) without interactions."""
    if interactions is None:
        return None, {}
    from ..evaluate.sequences import leave_one_out, load_interactions, sample_users

    users, seqs, order = load_interactions(interactions, item_ids)
    split = leave_one_out(users, seqs, opts.max_history, order_column=order)
    sampled = sample_users(split, opts.max_users, opts.seed)
    return sampled, {"test_users": len(sampled.test_targets), "test_users_total": len(split.test_targets),
                     "tune_users": min(opts.tune_users, len(sampled.valid_targets))}


def samples_note(samples: dict[str, Any]) -> str:
    """The report.md line that says what the evaluation measured on."""
    line = (f"Evaluation on bounded samples (cost per item flat in the catalog size): neighbour recall over "
            f"{samples['neighbour_queries']:,} query items of {samples['items']:,} (evaluate.neighbour_queries)")
    if "test_users" in samples:
        line += (f"; next-item metrics over {samples['test_users']:,} of {samples['test_users_total']:,} test users "
                 f"(seeded sample, evaluate.max_users), retriever knobs tuned on {samples['tune_users']:,} "
                 f"validation users (evaluate.tune_users)")
    return line + "."
