"""Compare tokenizers on one catalog: same embeddings, budget and seed for every model.

`run_comparison(catalog, out_dir, CompareOptions)` checks the options, embeds (cached), reads the
embeddings once, splits the interactions, builds the CF embeddings once (the collaborative rows),
trains each model and assigns resolved IDs (`build.py`), builds the retriever rows asked for (one
family after the other, `FAMILIES`), then `evaluate.evaluate_and_write` measures every model and
writes `comparison.parquet`, `comparison.json`, `report.md` and PNG plots into `out_dir`, all
atomically. The CLI `compare` and the compare-baselines flow both build their `CompareOptions` with
`compare_options`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..core.config import from_dict, to_dict
from ..core.errors import UserError
from ..evaluate.evaluation import EvaluationSettings, evaluate_and_write
from ..evaluate.sequences import Split
from .build import USES_CF, Embeddings, MapModels, build_models, compare_cf, rows_without_interactions
from .config import CompareConfig, CompareOptions, ModelIds, RetrieverRows, RowContext, progress_to_stderr
from .families import FAMILIES, family_settings, retriever_rows


def compare_options(knobs: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any] | None] | None = None,
                    **given: Any) -> CompareOptions:
    """The validated CompareOptions of the compare options: one check for the CLI `compare` and
    the compare-baselines flow, before any tokenizer is trained.

    knobs: CompareConfig fields (None values: the defaults); rows: family name (`FAMILIES`) -> the
    fields of its config given ({} for its defaults) or None for no such rows (a family left out:
    its default, `sasrec` on, the others off); given: the other CompareOptions fields (interactions,
    embeddings, embed, catalog_kwargs, cold_items, command).
    """
    cfg = from_dict(CompareConfig, {k: v for k, v in knobs.items() if v is not None}, where="compare")
    unknown = sorted(set(rows or {}) - set(FAMILIES))
    if unknown:
        raise UserError(f"unknown retriever row famil(y/ies) {unknown}; known: {list(FAMILIES)}")
    asked = {name: None if fields is None else family_settings(name, fields, cfg)
             for name, fields in (rows or {}).items()}
    paths = {k: Path(v) for k, v in given.items() if k in ("interactions", "embeddings") and v is not None}
    options = CompareOptions(config=cfg, rows=RetrieverRows(**asked), **{**given, **paths})
    check_options(options)
    return options


def run_comparison(catalog: Any, out_dir: str | Path, options: CompareOptions, *,
                   progress: Callable[[str], None] = progress_to_stderr,
                   map_models: MapModels | None = None) -> dict[str, Any]:
    """The whole comparison: catalog -> embeddings (cached) -> every model -> evaluation -> outputs.

    catalog: a catalog path (read with `load_catalog(path, **options.catalog_kwargs)`) or a loaded
    Catalog. map_models(build, kinds): runs build(kind) for every kind (default: one after the
    other; the compare-baselines flow: one Prefect task per kind). Without interactions the
    collaborative rows (rqvae-text, rqkmeans-cf) are left out with a note and `rqvae` is the text
    model; the trained-retriever rows need interactions (the `sasrec` row is dropped without).
    Returns the summary dict written to comparison.json.
    """
    out_dir, total, timings = Path(out_dir), time.perf_counter(), {}
    cfg, notes = check_options(options)
    catalog = load_catalog_once(catalog, options.catalog_kwargs, progress)
    embeddings = Embeddings.read(embed_once(catalog, options, out_dir, progress, timings))
    categories = catalog_categories(catalog, embeddings)
    split, cold = harness_split(options, embeddings.table.item_ids, cfg, progress)
    cf = None
    if split is not None and any(k in USES_CF for k in cfg.models):
        progress("cf: collaborative embeddings of the interactions' training part (cached in OUT/cf/)")
        cf = compare_cf(Path(options.interactions), embeddings.table.item_ids, split, out_dir, cfg, cold)
        notes.append(cf_note(cf, cfg))
    model_ids, built_notes, failed = build_models(cfg, embeddings, out_dir, progress, map_models, cf)
    notes += built_notes + reused_note(model_ids)
    table = embeddings.table
    config = {**to_dict(cfg), "embedding_model": table.model, "n_items": len(table), "embeddings": str(embeddings.path)}
    retrievers: list[Any] = []
    if split is not None:
        for name, rows in retriever_rows(options.rows, RowContext(model_ids, table, out_dir, cfg, progress)):
            retrievers += rows.retrievers
            notes.append(rows.note)
            config[name] = rows.config
    if options.cold_items is not None:
        config["cold_items"] = options.cold_items
    config["models"] = ",".join(cfg.models)
    summary = evaluate_and_write(
        out_dir, table.vectors, model_ids, evaluation_settings(cfg), config=config, retrievers=retrievers,
        categories=categories, split=split, command=options.command, notes=notes, failed=failed, timings=timings,
        progress=progress, started_at=total, cold=cold,
    )
    progress(f"done in {summary['timings']['total']:.1f}s: {out_dir / 'report.md'}")
    return summary


def evaluation_settings(cfg: CompareConfig) -> EvaluationSettings:
    """How the comparison measures: its codebook size, seed, neighbour queries and tuning users."""
    return EvaluationSettings(codebook_size=cfg.codebook_size, seed=cfg.seed,
                              neighbour_queries=cfg.neighbour_queries, tune_users=cfg.tune_users)


def check_options(options: CompareOptions) -> tuple[CompareConfig, list[str]]:
    """(the CompareConfig with the rows this comparison can build, report notes): the option checks
    that need no data, before anything is read or written."""
    from ..evaluate.cold import check_cold_fraction

    cfg, rows, interactions = options.config, options.rows, options.interactions
    # Rows on by default (sasrec) are left out without interactions; rows asked for are refused.
    needing = [f"--with-{name}" for name in rows.asked() if name not in RetrieverRows().asked()]
    needing += ["--cold-items"] if options.cold_items is not None else []
    if interactions is None and needing:
        raise UserError(f"{', '.join(needing)}: need --interactions (the retrievers learn from sequences)")
    check_cold_fraction(options.cold_items)
    if interactions is not None:
        return cfg, []
    models, note = rows_without_interactions(cfg.models)
    if not models:
        raise UserError(f"{', '.join(cfg.models)} need(s) --interactions (collaborative rows)")
    return replace(cfg, models=models), [note] if note else []


def load_catalog_once(catalog: Any, catalog_kwargs: Mapping[str, Any], progress: Callable[[str], None]) -> Any:
    """The loaded catalog (`catalog` itself when it is one already)."""
    if hasattr(catalog, "item_ids"):
        return catalog
    from ..catalog import load_catalog

    progress(f"catalog: loading {catalog}")
    return load_catalog(catalog, **catalog_kwargs)


def embed_once(catalog: Any, options: CompareOptions, out_dir: Path, progress: Callable[[str], None],
               timings: dict[str, float]) -> Path:
    """The given embeddings file, or the catalog embedded into OUT/embeddings/ (cached by text hash)."""
    if options.embeddings is not None:
        return Path(options.embeddings)
    from ..embed import EmbedConfig, embed_catalog

    progress(f"embed: {len(catalog.item_ids)} items (cached by text hash)")
    start = time.perf_counter()
    embed_catalog(catalog, out_dir / "embeddings", options.embed or EmbedConfig())
    timings["embed"] = time.perf_counter() - start
    return out_dir / "embeddings" / "embeddings.parquet"


def catalog_categories(catalog: Any, embeddings: Embeddings) -> list[str | None] | None:
    """Each embedded item's category path (embeddings row order), or None for a catalog without
    categories; an embedded item outside the catalog is a UserError."""
    catalog_pos = {item: i for i, item in enumerate(catalog.item_ids)}
    unknown = [i for i in embeddings.table.item_ids if i not in catalog_pos]
    if unknown:
        raise UserError(f"{embeddings.path}: {len(unknown)} embedded item(s) are not in the catalog, "
                        f"e.g. {unknown[0]!r}")
    if catalog.categories is None or not any(catalog.categories):
        return None
    return [catalog.categories[catalog_pos[i]] for i in embeddings.table.item_ids]


def harness_split(options: CompareOptions, item_ids, cfg: CompareConfig,
                  progress: Callable[[str], None]) -> tuple[Split | None, np.ndarray | None]:
    """(the leave-one-out split of the interactions or None, the cold items or None)."""
    if options.interactions is None:
        return None, None
    from ..evaluate.sequences import leave_one_out, load_interactions

    progress(f"interactions: loading {options.interactions}")
    users, seqs, order = load_interactions(options.interactions, item_ids)
    split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    if options.cold_items is None:
        return split, None
    from ..evaluate.cold import choose_cold_items, cold_split

    cold = choose_cold_items(len(item_ids), options.cold_items, cfg.seed)
    return cold_split(split, cold, len(item_ids)), cold


def cf_note(cf: Any, cfg: CompareConfig) -> str:
    """The report note on the collaborative rows and their CF embeddings."""
    rows = ", ".join(k for k in cfg.models if k in USES_CF)
    return (f"Collaborative rows ({rows}): CF embeddings (PPMI + SVD, {cf.dim} dims) of the interactions' "
            f"training part only (the split above: no validation or test target), for "
            f"{cf.metadata.get('items_with_cf')} of {cf.metadata.get('items_total')} items; `rqvae` trains with the "
            "InfoNCE term on them and its encoder reads [text, cf_alpha * CF] like `rqkmeans-cf`'s codes "
            "(text alone for items without one); `rqvae-text` is the text-only RQ-VAE.")


def reused_note(model_ids: list[ModelIds]) -> list[str]:
    reused = [m.name for m in model_ids if m.info.get("reused")]
    if not reused:
        return []
    return [f"Reused from an earlier run into this --out (same train config and embeddings): {', '.join(reused)}."]
