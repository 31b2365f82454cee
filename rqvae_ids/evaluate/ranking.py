"""Ranking metrics for next-item retrieval (one relevant item per user)."""

from __future__ import annotations

import numpy as np


def hit_ranks(recommended: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its row of `recommended` (U, k), or -1 if absent."""
    recommended = np.asarray(recommended)
    hits = recommended == np.asarray(targets)[:, None]
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1), -1)


def recall_at(recommended: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of users whose target is in their top-k."""
    ranks = hit_ranks(recommended[:, :k], targets)
    return float((ranks >= 0).mean()) if len(ranks) else 0.0


def ndcg_at(recommended: np.ndarray, targets: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item: 1/log2(rank+2) when the target is in the top-k."""
    ranks = hit_ranks(recommended[:, :k], targets)
    gains = np.where(ranks >= 0, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return float(gains.mean()) if len(gains) else 0.0


def next_item_metrics(recommended: np.ndarray, targets: np.ndarray, ks=(5, 10)) -> dict[str, float]:
    """The fixed metric names of comparison.parquet: next_recall@k and next_ndcg@k."""
    out = {}
    for k in ks:
        out[f"next_recall@{k}"] = recall_at(recommended, targets, k)
        out[f"next_ndcg@{k}"] = ndcg_at(recommended, targets, k)
    return out
