"""Exact nearest neighbours by cosine (faiss IndexFlatIP over L2-normalised vectors).

A foundation module: training uses it for the neighbour loss (train.py), evaluation
for neighbour recall's ground truth (evaluate/neighbours.py).
"""

from __future__ import annotations

import numpy as np


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices of each query's top-k cosine neighbours, the query itself excluded."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x[queries], k + 1)
    out = np.empty((len(queries), k), dtype=np.int64)
    for row, (q, cand) in enumerate(zip(queries, found)):
        cand = cand[cand != q]
        out[row] = cand[:k]
    return out
