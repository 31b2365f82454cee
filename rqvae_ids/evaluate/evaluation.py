"""Measure models' IDs and write the report: `evaluate_and_write`, the one path of the pipeline's
evaluate stage (one model) and of a comparison (every row).

`evaluate_and_write` = `category_levels` -> `measure_ids` (ID quality, neighbour recall) ->
`measure_retrievers` (popularity, embedding-knn, one sid-prefix retriever per model, then the
extra retrievers given, e.g. a comparison's trained ones) -> `outputs.write_outputs`
(comparison.parquet, comparison.json, report.md, PNG plots, all atomic). It takes already-built
`ModelIds`, so any code path can drive it (tests use synthetic codes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import harness, quality
from .model_ids import ModelIds
from .neighbours import neighbour_recall
from .outputs import Measured, write_outputs
from .protocol import Retriever
from .baselines import EmbeddingKnnRetriever, PopularityRetriever, SidPrefixRetriever
from .sequences import Split


@dataclass(frozen=True)
class EvaluationSettings:
    """How IDs and retrievers are measured, the same for every model of one report.

    codebook_size: K of the codes (code usage); neighbour_queries: query items of neighbour
    recall; tune_users: validation users sampled to tune the baselines' knobs; seed: of both samples.
    """

    codebook_size: int
    seed: int = 0
    neighbour_queries: int = 2000
    tune_users: int = 3000


def progress_silent(message: str) -> None:
    """The default progress callback: say nothing."""


def evaluate_and_write(
    out_dir: str | Path,
    vectors: np.ndarray,
    model_ids: Sequence[ModelIds],
    settings: EvaluationSettings,
    *,
    config: dict[str, Any],
    categories: Sequence[str | None] | None = None,
    split: Split | None = None,
    command: str = "",
    notes: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    progress: Callable[[str], None] = progress_silent,
    retrievers: Sequence[Retriever] = (),
    started_at: float | None = None,
    failed: Sequence[str] = (),
    cold: np.ndarray | None = None,
) -> dict[str, Any]:
    """Measure every model, write all outputs; returns the summary written to comparison.json.

    vectors: (N, d) float32 embeddings; config: the settings the report records (comparison.json
    `config`, the parquet's constant columns levels, codebook_size, seed, epochs, embedding_model,
    n_items where present); categories: (N,) first category path or None per item (None for the
    whole catalog skips NMI/purity); split: leave-one-out split or None (skips next-item metrics).
    failed: models that could not be built (rows of dashes). started_at: perf_counter() of the run
    start, for the total time. `retrievers`: extra fitted-or-not `Retriever`s evaluated as models of
    their own, named by their `name`; their rows come after the ID models and only carry the next_*
    metrics. cold: catalog indices of the cold items (`split` must already be `cold_split`'s): adds
    cold_recall@10/cold_ndcg@10 to every retriever row.
    """
    m = Measured(notes=list(notes), timings=dict(timings or {}))
    levels = category_levels(categories, m.notes)
    measure_ids(vectors, model_ids, settings, levels, progress, m)
    if split is None:
        m.notes.append("next_recall@k/next_ndcg@k skipped: no interactions given (--interactions).")
    else:
        measure_retrievers(vectors, model_ids, settings, split, retrievers, cold, progress, m)
    order = m.baselines + [x.name for x in model_ids] + m.extra + list(failed)
    return write_outputs(Path(out_dir), model_ids, settings.codebook_size, m, order, config, command, progress,
                         started_at)


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


def measure_ids(vectors: np.ndarray, model_ids: Sequence[ModelIds], settings: EvaluationSettings, levels,
                progress: Callable[[str], None], m: Measured) -> None:
    """ID quality of every model: code usage, reconstruction, category agreement, neighbour recall."""
    for ids in model_ids:
        start = time.perf_counter()
        progress(f"{ids.name}: ID quality and neighbour recall")
        metrics = quality.code_usage_metrics(ids.codes, settings.codebook_size, ids.suffix)
        if ids.recon is not None:
            metrics.update(quality.reconstruction_metrics(vectors, ids.recon))
        if levels is not None:
            metrics.update(quality.category_metrics(ids.codes, levels))
        metrics.update(neighbour_recall(vectors, ids.codes, max_queries=settings.neighbour_queries,
                                        seed=settings.seed))
        m.rows += [(ids.name, k, float(v)) for k, v in metrics.items()]
        m.timings[f"{ids.name}: quality + neighbour recall"] = time.perf_counter() - start
    if any(ids.recon is None for ids in model_ids):
        names = ", ".join(ids.name for ids in model_ids if ids.recon is None)
        m.notes.append(f"recon_mse/recon_cosine skipped for {names}: no decoder.")


def measure_retrievers(vectors: np.ndarray, model_ids: Sequence[ModelIds], settings: EvaluationSettings,
                       split: Split, retrievers: Sequence[Retriever], cold: np.ndarray | None,
                       progress: Callable[[str], None], m: Measured) -> None:
    """Next-item metrics of the baselines, one sid-prefix retriever per model, then `retrievers`."""
    n_items = len(vectors)
    m.notes.append(harness.HISTORY_POLICY)
    share = harness.target_in_history_share(split)
    m.notes.append(
        f"Next-item protocol: leave-one-out by {split.order_column or 'order'}, history <= {split.max_history}, "
        f"full ranking over {n_items} items, {len(split.test_targets)} test users; "
        f"{share:.2%} of test targets repeat a history item (a miss for every retriever)."
    )
    tune = {"tune_users": settings.tune_users, "seed": settings.seed}
    candidates: list[tuple[str, Retriever]] = [
        ("popularity", PopularityRetriever(n_items)),
        ("embedding-knn", EmbeddingKnnRetriever(vectors, **tune)),
    ]
    candidates += [(ids.name, SidPrefixRetriever(ids.codes, name=f"sid-prefix[{ids.name}]", **tune))
                   for ids in model_ids]
    candidates += [(r.name, r) for r in retrievers]  # last: the slow ones (trained retrievers)
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
        if getattr(retriever, "valid_hits", None) is not None:
            m.valid_hits[name] = retriever.valid_hits
        if name in extra:
            m.extra.append(name)
        elif name not in ids_names:
            m.baselines.append(name)


def _cold_metrics(retriever: Retriever, split: Split, cold: np.ndarray) -> dict[str, float]:
    """cold_* of a fitted retriever over the test users whose target is cold (NaN where the
    retriever cannot score a cold item, e.g. SASRec)."""
    from .cold import cold_metrics, cold_users, not_applicable

    if not getattr(retriever, "scores_cold", True):
        return not_applicable()
    users = cold_users(split, cold)
    histories = [split.test_histories[i] for i in users]
    return cold_metrics(harness.recommend_split(retriever, histories, 10), split.test_targets[users])


def _cold_note(split: Split, cold: np.ndarray, n_items: int, cannot: Sequence[str]) -> str:
    from .cold import cold_users

    n = len(cold_users(split, cold))
    text = (f"Cold items: {len(cold)} of {n_items} catalog items ({len(cold) / n_items:.1%}, seeded) removed from every "
            f"training sequence and validation history (validation users with a cold target left out); "
            f"cold_recall@10/cold_ndcg@10 over the {n} test users whose target is cold")
    text += " (none: NaN)." if n == 0 else "."
    if cannot:
        text += (f" {', '.join(cannot)}: not applicable (NaN, shown as –): an item-ID model has no learned "
                 "embedding for an item it never saw, so any score it gives one is not a measurement.")
    return text
