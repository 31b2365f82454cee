"""Next-item harness: every retriever is ranked the same way on the leave-one-out split.

Protocol (TIGER / P5): full ranking over the catalog, one target per user,
Recall@5/10 and NDCG@5/10 averaged over all users of the split.

History handling (the same for every retriever, see HISTORY_POLICY): items of
the user's own input history are removed from the ranking. The harness asks
the retriever for `k + extra` items, drops the history items and keeps the
first k that remain, so a retriever never has to know the policy. A test target
that repeats a history item can therefore not be hit by anyone; its share is
reported by `target_in_history_share`.

Hook for other retrievers (e.g. rqvae_ids.retrieval.GenerativeRetriever): meet
`Retriever` (name, fit, recommend). Optional attribute `history_extra: int`:
how many extra items to ask for (default: the longest history of the batch).
A retriever that never returns its input history items may set 0.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from .ranking import next_item_metrics
from .protocol import Retriever
from .sequences import Split

HISTORY_POLICY = (
    "Items of the user's own input history are removed from every retriever's ranking "
    "(the harness asks each retriever for k + |history| items, drops history items, keeps the first k); "
    "a target that repeats a history item counts as a miss for every retriever."
)


def rank_excluding_history(
    recommend: Callable[[Sequence[np.ndarray], int], np.ndarray],
    histories: Sequence[np.ndarray],
    k: int,
    extra: int | None = None,
) -> np.ndarray:
    """(U, k) int64 recommendations with each user's history items removed; -1 pads short rows.

    recommend: the retriever's `recommend(histories, k')`; extra: items asked for on
    top of k (default: the longest history).
    """
    u = len(histories)
    if u == 0:
        return np.zeros((0, k), dtype=np.int64)
    if extra is None:
        extra = max((len(h) for h in histories), default=0)
    raw = np.asarray(recommend(histories, k + extra), dtype=np.int64)
    if raw.shape[0] != u:
        raise ValueError(f"retriever returned {raw.shape[0]} rows for {u} histories")
    # Vectorised membership: mark raw[i, j] that appears in history i.
    width = max((len(h) for h in histories), default=0)
    hist = np.full((u, max(width, 1)), -2, dtype=np.int64)
    for i, h in enumerate(histories):
        hist[i, : len(h)] = h
    in_hist = (raw[:, :, None] == hist[:, None, :]).any(axis=2) | (raw < 0)
    # Stable compaction: keep the order of the surviving items, first k per row.
    order = np.argsort(in_hist, axis=1, kind="stable")
    kept = np.take_along_axis(raw, order, axis=1)[:, :k]
    valid = np.take_along_axis(~in_hist, order, axis=1)[:, :k]
    out = np.where(valid, kept, -1)
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


def recommend_split(
    retriever: Retriever,
    histories: Sequence[np.ndarray],
    k: int,
    batch_size: int = 2048,
) -> np.ndarray:
    """(U, k) history-filtered recommendations, asked in batches to bound memory."""
    extra = getattr(retriever, "history_extra", None)
    parts = [
        rank_excluding_history(retriever.recommend, histories[i : i + batch_size], k, extra)
        for i in range(0, len(histories), batch_size)
    ]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, k), dtype=np.int64)


def evaluate_retriever(
    retriever: Retriever,
    split: Split,
    ks: tuple[int, ...] = (5, 10),
    which: str = "test",
    batch_size: int = 2048,
) -> dict[str, float]:
    """Metrics of a fitted retriever on the test (or "valid") split.

    Returns {"next_recall@5", "next_ndcg@5", "next_recall@10", "next_ndcg@10"} for ks=(5, 10).
    """
    histories, targets = _pick(split, which)
    recommended = recommend_split(retriever, histories, max(ks), batch_size)
    return next_item_metrics(recommended, targets, ks)


def fit_retriever(retriever: Retriever, split: Split) -> Retriever:
    """Fit on training sequences; validation (histories, targets) is for tuning only."""
    return retriever.fit(split.train, valid=(split.valid_histories, split.valid_targets))


def fit_and_evaluate(retriever: Retriever, split: Split, ks: tuple[int, ...] = (5, 10)) -> tuple[dict[str, float], float]:
    """Fit then evaluate on test; returns (metrics, seconds)."""
    start = time.perf_counter()
    fit_retriever(retriever, split)
    metrics = evaluate_retriever(retriever, split, ks)
    return metrics, time.perf_counter() - start


def target_in_history_share(split: Split, which: str = "test") -> float:
    """Share of users whose target item is already in their input history."""
    histories, targets = _pick(split, which)
    if len(targets) == 0:
        return 0.0
    return float(np.mean([t in set(h.tolist()) for h, t in zip(histories, targets)]))


def _pick(split: Split, which: str) -> tuple[list[np.ndarray], np.ndarray]:
    if which == "test":
        return split.test_histories, split.test_targets
    if which == "valid":
        return split.valid_histories, split.valid_targets
    raise ValueError(f"which must be 'test' or 'valid', got {which!r}")
