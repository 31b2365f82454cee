"""Neighbour recall: do semantic IDs keep embedding-space neighbours together?

For a seeded sample of query items, the ground truth is each query's top-10
neighbours by exact cosine (faiss IndexFlatIP over L2-normalised vectors). The
ID-based ranking orders every other item by the length of the SID prefix it
shares with the query, longest first; ties are broken by a seeded shuffle so the
metric cannot be gamed by item order.
"""

from __future__ import annotations

import numpy as np

from ..core.knn import exact_neighbours


def shared_prefix_length(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(N,) number of leading levels where codes[i] equals `query` (L,)."""
    equal = codes == query[None, :]
    return np.cumprod(equal, axis=1).sum(axis=1)


def neighbour_recall(
    vectors: np.ndarray,
    codes: np.ndarray,
    ks: tuple[int, ...] = (10, 100),
    truth_k: int = 10,
    max_queries: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Recall@k (for each k in `ks`) of the true top-`truth_k` under SID-prefix ranking.

    vectors: (N, d) embeddings; codes: (N, L) integer codes in the same order.
    Returns {"neighbour_recall@10": ..., "neighbour_recall@100": ...}.
    """
    codes = np.asarray(codes)
    n = len(codes)
    if max_queries < 1:
        raise ValueError(f"max_queries must be >= 1, got {max_queries}")
    if n < truth_k + 2:
        raise ValueError(f"need more than {truth_k + 1} items for neighbour recall, got {n}")
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, size=min(max_queries, n), replace=False))
    truth = exact_neighbours(vectors, queries, truth_k)
    max_k = max(ks)
    hits = {k: 0 for k in ks}
    for q, true_nb in zip(queries, truth):
        prefix = shared_prefix_length(codes, codes[q]).astype(np.float64)
        prefix[q] = -1  # the query never retrieves itself
        tiebreak = rng.random(n)
        # Longest shared prefix first, random order within equal prefix length: the order of
        # lexsort((tiebreak, -prefix)), found by a partial sort (O(N) per query, not O(N log N)):
        # key = prefix + (1 - tiebreak) keeps the prefix levels apart, as 1 - tiebreak is in (0, 1].
        top = _top_by_key(prefix + (1.0 - tiebreak), max_k)
        for k in ks:
            hits[k] += np.isin(true_nb, top[:k]).sum()
    total = len(queries) * truth_k
    return {f"neighbour_recall@{k}": hits[k] / total for k in ks}


def _top_by_key(key: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest keys, largest first."""
    k = min(k, len(key))
    part = np.argpartition(-key, k - 1)[:k]
    return part[np.argsort(-key[part], kind="stable")]
