"""Statistics of integer code tuples: utilisation, perplexity, collisions.

Shared by training (per-epoch health), ID assignment (collision report) and
evaluation. Codes are an int array of shape (N, L) with values in [0, K).
"""

from __future__ import annotations

import numpy as np


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {codes.shape}")
    return codes


def level_counts(codes: np.ndarray, codebook_size: int) -> list[np.ndarray]:
    """Per level, how many items use each of the K codes: L arrays of shape (K,)."""
    codes = _check_codes(codes)
    return [np.bincount(codes[:, l], minlength=codebook_size) for l in range(codes.shape[1])]


def utilisation(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Per level, the share of the K codes used by at least one item."""
    return [float((c > 0).sum() / codebook_size) for c in level_counts(codes, codebook_size)]


def perplexity(codes: np.ndarray, codebook_size: int) -> list[float]:
    """Per level, exp(entropy) of code usage: K for perfectly even use, 1 for collapse."""
    out = []
    for c in level_counts(codes, codebook_size):
        p = c[c > 0] / max(c.sum(), 1)
        out.append(float(np.exp(-(p * np.log(p)).sum())) if p.size else 0.0)
    return out


def tuple_keys(codes: np.ndarray, base: int) -> np.ndarray | None:
    """One int64 per row of `codes` (N, L) in [0, base), ordered like the tuples; None if base**L overflows."""
    codes = np.asarray(codes)
    if int(base) ** codes.shape[1] >= 2**63:
        return None
    keys = np.zeros(codes.shape[0], dtype=np.int64)
    for l in range(codes.shape[1]):
        keys *= int(base)
        keys += codes[:, l]
    return keys


def group_tuples(codes: np.ndarray, base: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows of `codes` (N, L) with values in [0, base) (base None: max code + 1).

    Returns (inverse (N,) int64, sizes (G,) int64, first (G,) int64): group of each
    item, items per group, and one representative row per group; groups in tuple order.
    Tuples are packed into one int64 key when base**L fits in 63 bits (one integer
    sort, ~10x faster than np.unique(axis=0)); wider tuples take the row-wise path.
    """
    codes = _check_codes(codes)
    if codes.shape[0] == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    packable = np.issubdtype(codes.dtype, np.integer) and codes.min() >= 0
    if base is None and packable:
        base = int(codes.max()) + 1
    keys = tuple_keys(codes, base) if packable else None
    if keys is None:
        _, first, inverse, sizes = np.unique(
            codes, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
    else:
        _, first, inverse, sizes = np.unique(
            keys, return_index=True, return_inverse=True, return_counts=True
        )
    return inverse.reshape(-1).astype(np.int64), sizes.astype(np.int64), first.astype(np.int64)


def tuple_group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group items by full code tuple: (inverse, sizes), groups in lexicographic tuple order."""
    inverse, sizes, _ = group_tuples(codes)
    return inverse, sizes


def duplicate_and_colliding(sizes: np.ndarray) -> tuple[float, float]:
    """(duplicate_rate, colliding_share) of items grouped by full tuple into groups of `sizes`
    (items per distinct tuple, e.g. `group_tuples`' sizes): the one place both are computed.

    duplicate_rate = 1 - distinct tuples / items: the share of items that would have to move for
    every tuple to be unique (a group of 3 identical tuples counts 2). colliding_share = the share
    of items that share their tuple with at least one other item (that group counts 3). Both 0
    when every item has its own tuple (or there are no items).
    """
    sizes = np.asarray(sizes)
    n = int(sizes.sum())
    if n == 0:
        return 0.0, 0.0
    return float(1.0 - sizes.size / n), float(sizes[sizes > 1].sum() / n)


def duplicate_rate(codes: np.ndarray) -> float:
    """duplicate_rate of the rows of `codes` (N, L) (`duplicate_and_colliding`)."""
    _, sizes = tuple_group_ids(_check_codes(codes))
    return duplicate_and_colliding(sizes)[0]


def colliding_share(codes: np.ndarray) -> float:
    """colliding_share of the rows of `codes` (N, L) (`duplicate_and_colliding`)."""
    _, sizes = tuple_group_ids(_check_codes(codes))
    return duplicate_and_colliding(sizes)[1]
