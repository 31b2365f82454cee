"""faiss k-means helpers: one level, nearest-centroid assignment, residual k-means.

Everything here is numpy in, numpy out (float32), so the quantizers can call it on
encoder outputs and the `rqkmeans` baseline on raw embeddings alike.
"""

from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, k: int, niter: int = 20, seed: int = 0) -> np.ndarray:
    """Fit k centroids to x (N, D) float32 with faiss; returns (k, D) float32.

    With fewer distinct points than k, faiss would refuse; we then fill the missing
    centroids with data points plus tiny seeded noise so every code starts on the data.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n == 0:
        raise ValueError("k-means needs at least one point")
    rng = np.random.default_rng(seed)
    if n < k:
        extra = x[rng.integers(0, n, size=k - n)]
        scale = 1e-3 * float(x.std() or 1.0)
        x = np.concatenate([x, extra + scale * rng.standard_normal(extra.shape).astype(np.float32)])
    # max_points_per_centroid: use every point we were given (the caller chose the sample);
    # min_points_per_centroid=1: a small catalog is a valid input, not a faiss warning to print.
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, max_points_per_centroid=max(256, len(x) // k + 1),
                      min_points_per_centroid=1, verbose=False)
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (codes (N,) int64, squared distances (N,) float32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, in blocks to bound memory.
    codes = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    cn = (c * c).sum(1)
    for s in range(0, len(x), 8192):
        xb = x[s:s + 8192]
        d = (xb * xb).sum(1, keepdims=True) - 2.0 * xb @ c.T + cn[None, :]
        codes[s:s + 8192] = d.argmin(1)
        dist[s:s + 8192] = np.maximum(d[np.arange(len(xb)), codes[s:s + 8192]], 0.0)
    return codes, dist


def residual_kmeans(
    x: np.ndarray, levels: int, k: int, niter: int = 20, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Residual k-means: level l clusters what levels < l left.

    x: (N, D) float32. Returns (codebooks: L arrays (k, D) float32, codes (N, L) int64).
    """
    residual = np.array(x, dtype=np.float32, copy=True)
    books, codes = [], np.empty((len(x), levels), dtype=np.int64)
    for level in range(levels):
        c = kmeans(residual, k, niter=niter, seed=seed + level)
        codes[:, level], _ = assign(residual, c)
        residual -= c[codes[:, level]]
        books.append(c)
    return books, codes
