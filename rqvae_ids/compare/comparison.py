"""Compare tokenizers on one catalog: same embeddings, budget and seed for every model.

`run_comparison` checks the options, embeds (cached), splits the interactions, builds the
CF embeddings once (the collaborative rows), trains each model and assigns resolved IDs
(`build.py`), adds the retriever rows asked for, then `evaluate_and_write` measures every
model (`measure_ids`, `measure_retrievers`) and writes `comparison.parquet`,
`comparison.json`, `report.md` and PNG plots into `out_dir` (`write_outputs`), all atomically.

`evaluate_and_write` takes already-built `ModelIds`, so it can be driven by any
code path (tests use synthetic codes; the flows can reuse it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..config import to_dict
from ..errors import UserError
from ..evaluate import harness, quality
from ..evaluate.neighbours import neighbour_recall
from ..evaluate.retrievers import EmbeddingKnnRetriever, PopularityRetriever, SidPrefixRetriever
from ..evaluate.sequences import Split
from ..io import provenance, write_json_atomic, write_parquet_atomic, write_text_atomic
from . import plots
from .build import USES_CF, build_models, compare_cf, rows_without_interactions
from .config import CompareConfig, ModelIds, progress_to_stderr
from .item import sasrec_setting
from .report import build_report


@dataclass
class Measured:
    """What the measuring steps of `evaluate_and_write` collect: long-frame rows, report notes,
    timings, tuned retriever knobs, and the names of the baseline and extra retriever rows."""

    notes: list[str]
    timings: dict[str, float]
    rows: list[tuple[str, str, float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # rows of `retrievers`, after the ID models


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
    m = Measured(notes=list(notes), timings=dict(timings or {}))
    levels = category_levels(categories, m.notes)
    measure_ids(vectors, model_ids, cfg, levels, progress, m)
    if split is None:
        m.notes.append("next_recall@k/next_ndcg@k skipped: no interactions given (--interactions).")
    else:
        measure_retrievers(vectors, model_ids, cfg, split, retrievers, cold, progress, m)
    order = m.baselines + [x.name for x in model_ids] + m.extra + list(failed)
    config = {**to_dict(cfg), **(extra_config or {})}
    config["models"] = ",".join(cfg.models)
    return write_outputs(Path(out_dir), model_ids, cfg, m, order, config, command, progress, started_at)


def category_levels(categories: Sequence[str | None] | None, notes: list[str]):
    """quality.category_levels of the catalog (None: no categories), its report note added."""
    levels = quality.category_levels(categories)
    if levels is None:
        notes.append("nmi_l0/purity_l0/nmi_l01/purity_l01 skipped: the catalog has no categories.")
    elif levels.dropped_root:
        notes.append(
            f"Category root '{levels.dropped_root}' is shared by (almost) every item, so NMI/purity use the next "
            "path level as the top category (level-0 codes) and the one after as the second (l0, l1 prefixes)."
        )
    return levels


def measure_ids(vectors: np.ndarray, model_ids: Sequence[ModelIds], cfg: CompareConfig, levels,
                progress: Callable[[str], None], m: Measured) -> None:
    """ID quality of every model: code usage, reconstruction, category agreement, neighbour recall."""
    for ids in model_ids:
        start = time.perf_counter()
        progress(f"{ids.name}: ID quality and neighbour recall")
        metrics = quality.code_usage_metrics(ids.codes, cfg.codebook_size, ids.suffix)
        if ids.recon is not None:
            metrics.update(quality.reconstruction_metrics(vectors, ids.recon))
        if levels is not None:
            metrics.update(quality.category_metrics(ids.codes, levels))
        metrics.update(neighbour_recall(vectors, ids.codes, max_queries=cfg.neighbour_queries, seed=cfg.seed))
        m.rows += [(ids.name, k, float(v)) for k, v in metrics.items()]
        m.timings[f"{ids.name}: quality + neighbour recall"] = time.perf_counter() - start
    if any(ids.recon is None for ids in model_ids):
        names = ", ".join(ids.name for ids in model_ids if ids.recon is None)
        m.notes.append(f"recon_mse/recon_cosine skipped for {names}: no decoder.")


def measure_retrievers(vectors: np.ndarray, model_ids: Sequence[ModelIds], cfg: CompareConfig, split: Split,
                       retrievers: Sequence[Any], cold: np.ndarray | None, progress: Callable[[str], None],
                       m: Measured) -> None:
    """Next-item metrics of the baselines, one sid-prefix retriever per model, then `retrievers`."""
    n_items = len(vectors)
    m.notes.append(harness.HISTORY_POLICY)
    share = harness.target_in_history_share(split)
    m.notes.append(
        f"Next-item protocol: leave-one-out by {split.order_column or 'order'}, history <= {split.max_history}, "
        f"full ranking over {n_items} items, {len(split.test_targets)} test users; "
        f"{share:.2%} of test targets repeat a history item (a miss for every retriever)."
    )
    candidates: list[tuple[str, Any]] = [
        ("popularity", PopularityRetriever(n_items)),
        ("embedding-knn", EmbeddingKnnRetriever(vectors, tune_users=cfg.tune_users, seed=cfg.seed)),
    ]
    candidates += [
        (ids.name, SidPrefixRetriever(ids.codes, name=f"sid-prefix[{ids.name}]", tune_users=cfg.tune_users,
                                      seed=cfg.seed))
        for ids in model_ids
    ]
    candidates += [(r.name, r) for r in retrievers]  # last: the slow ones (generative)
    if cold is not None:
        cannot = [r.name for r in retrievers if not getattr(r, "scores_cold", True)]
        m.notes.append(_cold_note(split, cold, n_items, cannot))
    extra, ids_names = {r.name for r in retrievers}, {ids.name for ids in model_ids}
    for name, retriever in candidates:
        label = getattr(retriever, "name", name)
        progress(f"{name}: next-item retrieval ({label})")
        metrics, seconds = harness.fit_and_evaluate(retriever, split)
        if cold is not None:
            metrics.update(_cold_metrics(retriever, split, cold))
        m.rows += [(name, k, float(v)) for k, v in metrics.items()]
        m.timings[f"{name}: next-item ({label})"] = seconds
        if getattr(retriever, "tuned", None):
            m.details[label] = retriever.tuned
        if name in extra:
            m.extra.append(name)
        elif name not in ids_names:
            m.baselines.append(name)


def write_outputs(out_dir: Path, model_ids: Sequence[ModelIds], cfg: CompareConfig, m: Measured,
                  order: list[str], config: dict[str, Any], command: str, progress: Callable[[str], None],
                  started_at: float | None) -> dict[str, Any]:
    """comparison.parquet, the PNG plots, report.md and comparison.json (returned), all atomic."""
    comparison = pd.DataFrame(m.rows, columns=["model", "metric", "value"])
    prov = provenance()
    progress("writing comparison.parquet, plots, report.md")
    _write_parquet(comparison, out_dir / "comparison.parquet", config, command, prov)
    written = write_plots(out_dir, comparison, model_ids, cfg, m.notes)
    m.timings.update({f"{ids.name}: train + assign IDs": ids.seconds for ids in model_ids if ids.seconds})
    if started_at is not None:
        m.timings["total"] = time.perf_counter() - started_at
    shown = {**config, "epochs": config.get("epochs") or epochs_run(model_ids) or config.get("epochs")}
    report = build_report(
        comparison, order, command=command, provenance=prov, config=shown, notes=m.notes,
        timings=m.timings, plots=written, details=m.details,
    )
    write_text_atomic(out_dir / "report.md", report)
    summary = {
        "command": command, "config": config, "notes": m.notes, "timings": m.timings,
        "tuned": m.details, "models": order, "plots": written, "provenance": prov,
        "metrics": {name: dict(zip(g["metric"], g["value"]))
                    for name, g in with_aliases(comparison).groupby("model", sort=False)},
    }
    write_json_atomic(out_dir / "comparison.json", summary)
    return summary


def write_plots(out_dir: Path, comparison: pd.DataFrame, model_ids: Sequence[ModelIds], cfg: CompareConfig,
                notes: list[str]) -> list[str]:
    """The PNGs written (recall bars need next-item rows, loss curves per-epoch losses)."""
    written = []
    if plots.plot_recall_bars(comparison, out_dir / "recall_bars.png"):
        written.append("recall_bars.png")
    plots.plot_code_usage({ids.name: ids.codes for ids in model_ids}, cfg.codebook_size, out_dir / "code_usage.png")
    written.append("code_usage.png")
    if plots.plot_loss_curves({ids.name: ids.losses for ids in model_ids}, out_dir / "loss_curves.png"):
        written.append("loss_curves.png")
    else:
        notes.append("loss_curves.png not written: no model logged per-epoch losses.")
    return written


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


# ---------------------------------------------------------------- the whole comparison


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
    sasrec: Any = True,
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
    the compare-baselines flow: one Prefect task per kind). parallel: an `ItemRetrieverConfig`
    (head parallel) adding a `parallel/<kind>` row per ID model (None: no such rows). sasrec:
    True (the default: the compare's small budget), an `ItemRetrieverConfig` (head sasrec), or
    False/None (no row); the row exists only with interactions. cold_items: share of the catalog
    held out of training and validation (`--cold-items`, in (0, 0.5)), adds cold_* metrics.
    Without interactions the collaborative rows (rqvae-text, rqkmeans-cf) are left out with a
    note and `rqvae` is the text model. Returns the summary dict.
    """
    from ..embedding_table import read_embeddings

    out_dir, total, timings = Path(out_dir), time.perf_counter(), {}
    cfg, notes = check_options(cfg, interactions, generative, parallel, cold_items)
    catalog = load_catalog_once(catalog, catalog_kwargs, progress)
    embeddings = embed_once(catalog, embeddings, out_dir, embed_cfg, progress, timings)
    table = read_embeddings(embeddings)
    categories = catalog_categories(catalog, table, embeddings)
    split, cold = harness_split(interactions, table.item_ids, cfg, cold_items, progress)
    cf = None
    if interactions is not None and any(k in USES_CF for k in cfg.models):
        progress("cf: collaborative embeddings of the interactions' training part (cached in OUT/cf/)")
        cf = compare_cf(Path(interactions), table.item_ids, split, out_dir, cfg, cold)
        notes.append(cf_note(cf, cfg))
    model_ids, built_notes, failed = build_models(cfg, Path(embeddings), out_dir, len(table), progress, map_models, cf)
    notes += built_notes + reused_note(model_ids)
    extra_config = {"embedding_model": table.model, "n_items": len(table), "embeddings": str(embeddings)}
    extra = list(retriever_factory(model_ids, out_dir)) if retriever_factory and split is not None else []
    extra += generative_rows(model_ids, out_dir, generative, cfg, table, progress, notes, extra_config)
    sasrec = sasrec_setting(sasrec, cfg.seed) if split is not None else None
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


def check_options(cfg: CompareConfig, interactions, generative, parallel,
                  cold_items: float | None) -> tuple[CompareConfig, list[str]]:
    """(cfg with the rows this comparison can build, report notes): the option checks that need
    no data, before anything is read or written."""
    from dataclasses import replace

    from ..evaluate.cold import check_cold_fraction

    if generative is not None and interactions is None:
        raise UserError("--with-generative needs --interactions (the generative retriever learns from sequences)")
    if interactions is None and (parallel is not None or cold_items is not None):
        raise UserError("--with-parallel and --cold-items need --interactions")
    check_cold_fraction(cold_items)
    if interactions is not None:
        return cfg, []
    models, note = rows_without_interactions(cfg.models)
    if not models:
        raise UserError(f"{', '.join(cfg.models)} need(s) --interactions (collaborative rows)")
    return replace(cfg, models=models), [note] if note else []


def load_catalog_once(catalog: Any, catalog_kwargs: dict[str, Any] | None, progress: Callable[[str], None]) -> Any:
    """The loaded catalog (`catalog` itself when it is one already)."""
    if hasattr(catalog, "item_ids"):
        return catalog
    from ..catalog import load_catalog

    progress(f"catalog: loading {catalog}")
    return load_catalog(catalog, **(catalog_kwargs or {}))


def embed_once(catalog: Any, embeddings, out_dir: Path, embed_cfg: Any, progress: Callable[[str], None],
               timings: dict[str, float]) -> Path:
    """The given embeddings file, or the catalog embedded into OUT/embeddings/ (cached by text hash)."""
    if embeddings is not None:
        return Path(embeddings)
    from ..embed import EmbedConfig, embed_catalog

    progress(f"embed: {len(catalog.item_ids)} items (cached by text hash)")
    start = time.perf_counter()
    embed_catalog(catalog, out_dir / "embeddings", embed_cfg or EmbedConfig())
    timings["embed"] = time.perf_counter() - start
    return out_dir / "embeddings" / "embeddings.parquet"


def catalog_categories(catalog: Any, table: Any, embeddings: Path) -> list[str | None] | None:
    """Each embedded item's category path (embeddings row order), or None for a catalog without
    categories; an embedded item outside the catalog is a UserError."""
    catalog_pos = {item: i for i, item in enumerate(catalog.item_ids)}
    unknown = [i for i in table.item_ids if i not in catalog_pos]
    if unknown:
        raise UserError(f"{embeddings}: {len(unknown)} embedded item(s) are not in the catalog, e.g. {unknown[0]!r}")
    if catalog.categories is None or not any(catalog.categories):
        return None
    return [catalog.categories[catalog_pos[i]] for i in table.item_ids]


def harness_split(interactions, item_ids, cfg: CompareConfig, cold_items: float | None,
                  progress: Callable[[str], None]) -> tuple[Split | None, np.ndarray | None]:
    """(the leave-one-out split of the interactions or None, the cold items or None)."""
    if interactions is None:
        return None, None
    from ..evaluate.sequences import leave_one_out, load_interactions

    progress(f"interactions: loading {interactions}")
    users, seqs, order = load_interactions(interactions, item_ids)
    split = leave_one_out(users, seqs, cfg.max_history, order_column=order)
    if cold_items is None:
        return split, None
    from ..evaluate.cold import choose_cold_items, cold_split

    cold = choose_cold_items(len(item_ids), cold_items, cfg.seed)
    return cold_split(split, cold, len(item_ids)), cold


def cf_note(cf: Any, cfg: CompareConfig) -> str:
    """The report note on the collaborative rows and their CF embeddings."""
    rows = ", ".join(k for k in cfg.models if k in USES_CF)
    return (f"Collaborative rows ({rows}): CF embeddings (PPMI + SVD, {cf.dim} dims) of the interactions' "
            f"training part only (the split above: no validation or test target), for "
            f"{cf.metadata.get('items_with_cf')} of {cf.metadata.get('items_total')} items; `rqvae` trains with the "
            "InfoNCE term on them (its encoder still reads text only), `rqkmeans-cf` codes [text, cf_alpha * CF] "
            "(text alone for items without one); `rqvae-text` is the text-only RQ-VAE.")


def reused_note(model_ids: Sequence[ModelIds]) -> list[str]:
    reused = [m.name for m in model_ids if m.info.get("reused")]
    if not reused:
        return []
    return [f"Reused from an earlier run into this --out (same train config and embeddings): {', '.join(reused)}."]


def generative_rows(model_ids: Sequence[ModelIds], out_dir: Path, generative: Any, cfg: CompareConfig, table: Any,
                    progress: Callable[[str], None], notes: list[str], extra_config: dict[str, Any]) -> list[Any]:
    """The `generative/<kind>` retrievers (--with-generative), or none."""
    if generative is None:
        return []
    from dataclasses import replace

    from .generative import generative_note, generative_retrievers

    generative = replace(generative, max_history=cfg.max_history)  # the split's history truncation
    vectors = table.vectors if generative.content else None  # rows = model_ids' codes order
    notes.append(generative_note(generative))
    extra_config["generative"] = to_dict(generative)
    return generative_retrievers(model_ids, out_dir, generative, progress, item_vectors=vectors,
                                 width=cfg.codebook_size)


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
