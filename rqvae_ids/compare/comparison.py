"""Compare tokenizers on one catalog: same embeddings, budget and seed for every model.

`run_comparison` embeds (cached), trains each model, assigns and resolves IDs
(rqvae_ids.pipeline-free: plain library calls), then `evaluate_and_write`
measures every model and writes `comparison.parquet`, `comparison.json`,
`report.md` and PNG plots into `out_dir`, all atomically.

`evaluate_and_write` takes already-built `ModelIds`, so it can be driven by any
code path (tests use synthetic codes; the flows can reuse it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..config import to_dict
from ..errors import UserError
from ..evaluate import harness, quality
from ..evaluate.neighbours import neighbour_recall
from ..evaluate.random_ids import random_codes
from ..evaluate.retrievers import EmbeddingKnnRetriever, PopularityRetriever, SidPrefixRetriever
from ..evaluate.sequences import Split
from ..io import provenance, read_json_or_none, sha256_file, write_json_atomic, write_parquet_atomic, write_text_atomic
from . import plots
from .config import CompareConfig, ModelIds, progress_to_stderr
from .report import build_report


def evaluate_and_write(
    out_dir: str | Path,
    vectors: np.ndarray,
    model_ids: Sequence[ModelIds],
    cfg: CompareConfig,
    *,
    categories: Sequence[str | None] | None = None,
    split: Split | None = None,
    command: str = "",
    notes: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    extra_config: dict[str, Any] | None = None,
    progress: Callable[[str], None] = progress_to_stderr,
    retrievers: Sequence[Any] = (),
    started_at: float | None = None,
    failed: Sequence[str] = (),
    cold: np.ndarray | None = None,
) -> dict[str, Any]:
    """Measure every model, write all outputs; returns the summary written to comparison.json.

    vectors: (N, d) float32 embeddings; categories: (N,) first category path or None per
    item (None for the whole catalog skips NMI/purity); split: leave-one-out split or None
    (skips next-item metrics). failed: models that could not be built (rows of dashes).
    started_at: perf_counter() of the run start, for the total time.
    `retrievers`: extra fitted-or-not `Retriever`s evaluated as
    models of their own (e.g. the generative retriever), named by their `name`; their
    rows come after the ID models and only carry the next_* metrics.
    cold: catalog indices of the cold items (`--cold-items`; `split` must already be
    `cold_split`'s): adds cold_recall@10/cold_ndcg@10 to every retriever row.
    """
    out_dir = Path(out_dir)
    timings = dict(timings or {})
    notes = list(notes)
    rows: list[tuple[str, str, float]] = []
    details: dict[str, Any] = {}
    levels = quality.category_levels(categories)
    if levels is None:
        notes.append("nmi_l0/purity_l0/nmi_l01/purity_l01 skipped: the catalog has no categories.")
    elif levels.dropped_root:
        notes.append(
            f"Category root '{levels.dropped_root}' is shared by (almost) every item, so NMI/purity use the next "
            "path level as the top category (level-0 codes) and the one after as the second (l0, l1 prefixes)."
        )
    for m in model_ids:
        start = time.perf_counter()
        progress(f"{m.name}: ID quality and neighbour recall")
        metrics = quality.code_usage_metrics(m.codes, cfg.codebook_size, m.suffix)
        if m.recon is not None:
            metrics.update(quality.reconstruction_metrics(vectors, m.recon))
        if levels is not None:
            metrics.update(quality.category_metrics(m.codes, levels))
        metrics.update(neighbour_recall(vectors, m.codes, max_queries=cfg.neighbour_queries, seed=cfg.seed))
        rows += [(m.name, k, float(v)) for k, v in metrics.items()]
        timings[f"{m.name}: quality + neighbour recall"] = time.perf_counter() - start
    if any(m.recon is None for m in model_ids):
        names = ", ".join(m.name for m in model_ids if m.recon is None)
        notes.append(f"recon_mse/recon_cosine skipped for {names}: no decoder.")
    baseline_names: list[str] = []
    extra_names: list[str] = []  # rows of `retrievers`, after the ID models
    if split is None:
        notes.append("next_recall@k/next_ndcg@k skipped: no interactions given (--interactions).")
    else:
        n_items = len(vectors)
        notes.append(harness.HISTORY_POLICY)
        share = harness.target_in_history_share(split)
        notes.append(
            f"Next-item protocol: leave-one-out by {split.order_column or 'order'}, history <= {split.max_history}, "
            f"full ranking over {n_items} items, {len(split.test_targets)} test users; "
            f"{share:.2%} of test targets repeat a history item (a miss for every retriever)."
        )
        candidates: list[tuple[str, Any]] = [
            ("popularity", PopularityRetriever(n_items)),
            ("embedding-knn", EmbeddingKnnRetriever(vectors, tune_users=cfg.tune_users, seed=cfg.seed)),
        ]
        candidates += [
            (m.name, SidPrefixRetriever(m.codes, name=f"sid-prefix[{m.name}]", tune_users=cfg.tune_users, seed=cfg.seed))
            for m in model_ids
        ]
        candidates += [(r.name, r) for r in retrievers]  # last: the slow ones (generative)
        if cold is not None:
            notes.append(_cold_note(split, cold, n_items, [r.name for r in retrievers if not getattr(r, "scores_cold", True)]))
        for name, retriever in candidates:
            progress(f"{name}: next-item retrieval ({getattr(retriever, 'name', name)})")
            metrics, seconds = harness.fit_and_evaluate(retriever, split)
            if cold is not None:
                metrics.update(_cold_metrics(retriever, split, cold))
            rows += [(name, k, float(v)) for k, v in metrics.items()]
            timings[f"{name}: next-item ({getattr(retriever, 'name', name)})"] = seconds
            if getattr(retriever, "tuned", None):
                details[getattr(retriever, "name", name)] = retriever.tuned
            if name in [r.name for r in retrievers]:
                extra_names.append(name)
            elif name not in [m.name for m in model_ids]:
                baseline_names.append(name)
    order = baseline_names + [m.name for m in model_ids] + extra_names + list(failed)
    comparison = pd.DataFrame(rows, columns=["model", "metric", "value"])
    config = {**to_dict(cfg), **(extra_config or {})}
    config["models"] = ",".join(cfg.models)
    prov = provenance()
    progress("writing comparison.parquet, plots, report.md")
    _write_parquet(comparison, out_dir / "comparison.parquet", config, command, prov)
    written = []
    if plots.plot_recall_bars(comparison, out_dir / "recall_bars.png"):
        written.append("recall_bars.png")
    plots.plot_code_usage({m.name: m.codes for m in model_ids}, cfg.codebook_size, out_dir / "code_usage.png")
    written.append("code_usage.png")
    if plots.plot_loss_curves({m.name: m.losses for m in model_ids}, out_dir / "loss_curves.png"):
        written.append("loss_curves.png")
    else:
        notes.append("loss_curves.png not written: no model logged per-epoch losses.")
    timings.update({f"{m.name}: train + assign IDs": m.seconds for m in model_ids if m.seconds})
    if started_at is not None:
        timings["total"] = time.perf_counter() - started_at
    shown = {**config, "epochs": config.get("epochs") or epochs_run(model_ids) or config.get("epochs")}
    report = build_report(
        comparison, order, command=command, provenance=prov, config=shown, notes=notes,
        timings=timings, plots=written, details=details,
    )
    write_text_atomic(out_dir / "report.md", report)
    summary = {
        "command": command, "config": config, "notes": notes, "timings": timings,
        "tuned": details, "models": order, "plots": written, "provenance": prov,
        "metrics": {m: dict(zip(g["metric"], g["value"]))
                    for m, g in with_aliases(comparison).groupby("model", sort=False)},
    }
    write_json_atomic(out_dir / "comparison.json", summary)
    return summary


def _cold_metrics(retriever: Any, split: Split, cold: np.ndarray) -> dict[str, float]:
    """cold_* of a fitted retriever over the test users whose target is cold (NaN where the
    retriever cannot score a cold item, e.g. SASRec)."""
    from ..evaluate.cold import cold_metrics, cold_users, not_applicable

    if not getattr(retriever, "scores_cold", True):
        return not_applicable()
    users = cold_users(split, cold)
    histories = [split.test_histories[i] for i in users]
    return cold_metrics(harness.recommend_split(retriever, histories, 10), split.test_targets[users])


def _cold_note(split: Split, cold: np.ndarray, n_items: int, cannot: Sequence[str]) -> str:
    from ..evaluate.cold import cold_users

    n = len(cold_users(split, cold))
    text = (f"Cold items: {len(cold)} of {n_items} catalog items ({len(cold) / n_items:.1%}, seeded) removed from every "
            f"training sequence and validation history (validation users with a cold target left out); "
            f"cold_recall@10/cold_ndcg@10 over the {n} test users whose target is cold")
    text += " (none: NaN)." if n == 0 else "."
    if cannot:
        text += (f" {', '.join(cannot)}: not applicable (NaN, shown as –): an item-ID model has no learned "
                 "embedding for an item it never saw, so any score it gives one is not a measurement.")
    return text


def epochs_run(model_ids: Sequence[ModelIds]) -> str | None:
    """The epochs the models actually trained, from their per-epoch losses, for the report's config
    line where the config left them to the default (one number if all agree, else per model)."""
    runs = {m.name: int(m.losses["epoch"].max()) for m in model_ids
            if m.losses is not None and "epoch" in m.losses.columns and len(m.losses)}
    if not runs:
        return None
    if len(set(runs.values())) == 1:
        return str(next(iter(runs.values())))
    return " / ".join(f"{name} {n}" for name, n in runs.items())


def with_aliases(comparison: pd.DataFrame) -> pd.DataFrame:
    """The long frame plus rows under the old metric names (quality.METRIC_ALIASES), for one release."""
    extra = []
    for old, new in quality.METRIC_ALIASES.items():
        rows = comparison[comparison["metric"] == new]
        extra.append(rows.assign(metric=old))
    return pd.concat([comparison, *extra], ignore_index=True) if extra else comparison


def _write_parquet(comparison: pd.DataFrame, path: Path, config: dict, command: str, prov: dict) -> None:
    """Long table plus constant config columns (levels, codebook_size, seed, epochs, ...)."""
    comparison = with_aliases(comparison)
    cols = {
        "model": pa.array(comparison["model"].tolist(), pa.string()),
        "metric": pa.array(comparison["metric"].tolist(), pa.string()),
        "value": pa.array(comparison["value"].to_numpy(dtype=np.float64), pa.float64()),
    }
    for key in ("levels", "codebook_size", "seed", "epochs", "embedding_model", "n_items"):
        if key in config:
            value = config[key]
            typ = pa.string() if key == "embedding_model" else pa.int64()
            cols[key] = pa.array([value] * len(comparison), typ)
    table = pa.table(cols)
    write_parquet_atomic(table, path, {"config": config, "command": command, "provenance": prov})


# ---------------------------------------------------------------- building IDs


def compare_settings(knobs: dict[str, Any], generative: dict[str, Any] | None = None) -> tuple[CompareConfig, Any]:
    """The validated CompareConfig of the compare options and, when `generative` is given (the
    --generative-* RetrievalConfig fields; {} for the defaults), its RetrievalConfig: one check
    for the CLI `compare` and the compare-baselines flow, before any tokenizer is trained."""
    from ..config import from_dict

    cfg = from_dict(CompareConfig, {k: v for k, v in knobs.items() if v is not None}, where="compare")
    if generative is None:
        return cfg, None
    from ..retrieval.trainer import RetrievalConfig

    return cfg, from_dict(RetrievalConfig, {**generative, "seed": cfg.seed, "valid_users": cfg.tune_users},
                          where="compare --generative-*")


def build_models(cfg: CompareConfig, embeddings: Path, out_dir: Path, n_items: int,
                 progress: Callable[[str], None], map_models=None) -> tuple[list[ModelIds], list[str], list[str]]:
    """(built ModelIds, notes, failed kinds) of every kind in cfg.models; one failing model (e.g. too
    many collisions) becomes a note rather than hiding the others."""
    def build(kind: str) -> ModelIds | UserError:
        progress(f"{kind} ({cfg.models.index(kind) + 1}/{len(cfg.models)}): train + assign IDs")
        try:
            return build_model_ids(kind, embeddings, out_dir, cfg, n_items)
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


def _item_rows(model_ids, n_items, out_dir, parallel, sasrec, split, progress, notes, extra_config) -> list[Any]:
    """The `sasrec` and `parallel/<kind>` retrievers asked for (rows after the generative ones)."""
    if split is None:
        return []
    from .item import item_note, parallel_retrievers, sasrec_retriever

    rows: list[Any] = []
    if sasrec is not None:
        rows.append(sasrec_retriever(n_items, out_dir, sasrec, progress))
        notes.append(item_note(sasrec, "sasrec"))
        extra_config["sasrec"] = to_dict(sasrec)
    if parallel is not None:
        rows += parallel_retrievers(model_ids, n_items, out_dir, parallel, progress)
        notes.append(item_note(parallel, "parallel"))
        extra_config["parallel"] = to_dict(parallel)
    return rows


def build_model_ids(kind: str, embeddings_path: Path, work_dir: Path, cfg: CompareConfig, n_items: int) -> ModelIds:
    """Train `kind` (or draw random IDs), assign resolved IDs; codes in embeddings row order."""
    start = time.perf_counter()
    if kind == "random":
        codes = random_codes(n_items, cfg.levels, cfg.codebook_size, cfg.seed)
        return ModelIds("random", codes, np.zeros(n_items, np.int64), seconds=time.perf_counter() - start)
    from ..ids import assign_ids, read_semantic_ids
    from ..models import load_model
    from ..embedding_table import read_embeddings
    from ..train import config_from_args, train_model

    model_dir, ids_dir = work_dir / "models" / kind, work_dir / "ids" / kind
    # The same budget for every kind: levels, codebook size, seed and epochs; the rest are
    # TrainConfig/ModelConfig defaults (saved in each model's config.json).
    train_cfg = config_from_args(kind=kind, levels=cfg.levels, codebook_size=cfg.codebook_size,
                                 seed=cfg.seed, epochs=cfg.epochs)
    # Reruns into the same --out reuse a model trained with the same config on the same data.
    key = {"train": to_dict(train_cfg), "embeddings_sha256": sha256_file(embeddings_path)}
    marker = ids_dir / "compare_key.json"
    if read_json_or_none(marker) == json.loads(json.dumps(key)) and (ids_dir / "semantic_ids.parquet").is_file():
        info = {"reused": str(model_dir)}
    else:
        train_model(embeddings_path, model_dir, train_cfg, progress=False)
        assign_ids(model_dir, embeddings_path, ids_dir, resolve="suffix")
        write_json_atomic(marker, key)
        info = {}
    sids = read_semantic_ids(ids_dir / "semantic_ids.parquet")
    codes, suffix = sids.codes_in_order(read_embeddings(embeddings_path).item_ids, where=kind)
    model = load_model(model_dir)
    recon = np.asarray(model.decode_codes(codes), dtype=np.float32)
    losses = pd.read_parquet(model_dir / "metrics.parquet") if (model_dir / "metrics.parquet").is_file() else None
    return ModelIds(kind, codes, suffix, recon, losses, seconds=time.perf_counter() - start, info=info)


def run_comparison(
    catalog: Any,
    out_dir: str | Path,
    cfg: CompareConfig,
    *,
    interactions: str | Path | None = None,
    embeddings: str | Path | None = None,
    catalog_kwargs: dict[str, Any] | None = None,
    embed_cfg: Any = None,
    command: str = "",
    progress: Callable[[str], None] = progress_to_stderr,
    retriever_factory: Callable[[list[ModelIds], Path], Sequence[Any]] | None = None,
    generative: Any = None,
    map_models: Callable[[Callable[[str], Any], Sequence[str]], list[Any]] | None = None,
    parallel: Any = None,
    sasrec: Any = None,
    cold_items: float | None = None,
) -> dict[str, Any]:
    """The whole comparison: catalog -> embeddings (cached) -> every model -> evaluation -> outputs.

    catalog: a catalog path (read with `load_catalog(path, **catalog_kwargs)`) or a loaded Catalog.

    embeddings: an existing embeddings.parquet of this catalog to reuse instead of embedding
    (rows may be in any order; every row must be a catalog item). retriever_factory: called
    with (built ModelIds, out_dir) after the models are built (IDs are in out_dir/ids/<kind>/),
    returns extra `Retriever`s evaluated as rows of their own. generative: a
    `rqvae_ids.retrieval.RetrievalConfig` (--with-generative): adds a generative retriever
    per ID model (`generative_retrievers`, rows `generative/<kind>`); needs interactions.
    map_models(build, kinds): runs build(kind) for every kind (default: one after the other;
    the compare-baselines flow: one Prefect task per kind). parallel / sasrec: an
    `ItemRetrieverConfig` (head parallel / sasrec) adding a `parallel/<kind>` row per ID model
    / one `sasrec` row (None: no such row; both need interactions). cold_items: share of the
    catalog held out of training and validation (`--cold-items`, in (0, 0.5)), adds cold_* metrics.
    Returns the summary dict.
    """
    from ..embedding_table import read_embeddings

    out_dir = Path(out_dir)
    if generative is not None and interactions is None:
        raise UserError("--with-generative needs --interactions (the generative retriever learns from sequences)")
    if interactions is None and (parallel is not None or cold_items is not None):
        raise UserError("--with-parallel and --cold-items need --interactions")
    from ..evaluate.cold import check_cold_fraction

    check_cold_fraction(cold_items)
    timings: dict[str, float] = {}
    total = time.perf_counter()
    if not hasattr(catalog, "item_ids"):
        from ..catalog import load_catalog

        progress(f"catalog: loading {catalog}")
        catalog = load_catalog(catalog, **(catalog_kwargs or {}))
    if embeddings is None:
        from ..embed import EmbedConfig, embed_catalog

        progress(f"embed: {len(catalog.item_ids)} items (cached by text hash)")
        start = time.perf_counter()
        embed_catalog(catalog, out_dir / "embeddings", embed_cfg or EmbedConfig())
        timings["embed"] = time.perf_counter() - start
        embeddings = out_dir / "embeddings" / "embeddings.parquet"
    table = read_embeddings(embeddings)
    catalog_pos = {item: i for i, item in enumerate(catalog.item_ids)}
    unknown = [i for i in table.item_ids if i not in catalog_pos]
    if unknown:
        raise UserError(f"{embeddings}: {len(unknown)} embedded item(s) are not in the catalog, e.g. {unknown[0]!r}")
    categories = None
    if catalog.categories is not None and any(catalog.categories):
        categories = [catalog.categories[catalog_pos[i]] for i in table.item_ids]
    split = None
    if interactions is not None:
        from ..evaluate.sequences import leave_one_out, load_interactions

        progress(f"interactions: loading {interactions}")
        users, seqs, order = load_interactions(interactions, table.item_ids)
        split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    cold = None
    if cold_items is not None:
        from ..evaluate.cold import choose_cold_items, cold_split

        cold = choose_cold_items(len(table), cold_items, cfg.seed)
        split = cold_split(split, cold, len(table))
    model_ids, notes, failed = build_models(cfg, Path(embeddings), out_dir, len(table), progress, map_models)
    reused = [m.name for m in model_ids if m.info.get("reused")]
    if reused:
        notes.append(f"Reused from an earlier run into this --out (same train config and embeddings): {', '.join(reused)}.")
    extra = list(retriever_factory(model_ids, out_dir)) if retriever_factory and split is not None else []
    extra_config = {"embedding_model": table.model, "n_items": len(table), "embeddings": str(embeddings)}
    if generative is not None:
        from dataclasses import replace

        from .generative import generative_note, generative_retrievers

        generative = replace(generative, max_history=cfg.max_history)  # the split's history truncation
        vectors = table.vectors if generative.content else None  # rows = model_ids' codes order
        extra += generative_retrievers(model_ids, out_dir, generative, progress, item_vectors=vectors)
        notes.append(generative_note(generative))
        extra_config["generative"] = to_dict(generative)
    extra += _item_rows(model_ids, len(table), out_dir, parallel, sasrec, split, progress, notes, extra_config)
    if cold_items is not None:
        extra_config["cold_items"] = cold_items
    summary = evaluate_and_write(
        out_dir, table.vectors, model_ids, cfg, retrievers=extra, categories=categories, split=split,
        command=command, notes=notes, failed=failed, timings=timings, progress=progress, started_at=total,
        extra_config=extra_config, cold=cold,
    )
    progress(f"done in {summary['timings']['total']:.1f}s: {out_dir / 'report.md'}")
    return summary
