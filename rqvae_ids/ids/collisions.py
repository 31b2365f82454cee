"""Collision check: group items by their full code tuple.

Tuples are packed into one int64 key per item (lexicographic order preserved) when
K**L fits in 63 bits, so grouping 1M items is one integer sort rather than a
row-wise `np.unique(axis=0)`; wider tuples fall back to the row-wise path.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .. import metrics


def tuple_keys(codes: np.ndarray, base: int) -> np.ndarray | None:
    """One int64 per row of `codes` (N, L), ordered like the tuples; None if base**L overflows."""
    codes = np.asarray(codes)
    if base ** codes.shape[1] >= 2**63:
        return None
    keys = np.zeros(codes.shape[0], dtype=np.int64)
    for l in range(codes.shape[1]):
        keys *= base
        keys += codes[:, l]
    return keys


def group_tuples(codes: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows of `codes` (N, L) with values in [0, base).

    Returns (inverse (N,) int64, sizes (G,) int64, first (G,) int64): group of each
    item, items per group, and one representative row per group; groups in tuple order.
    """
    codes = np.asarray(codes)
    if codes.shape[0] == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    keys = tuple_keys(codes, base)
    if keys is None:
        _, first, inverse, sizes = np.unique(
            codes, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
    else:
        _, first, inverse, sizes = np.unique(
            keys, return_index=True, return_inverse=True, return_counts=True
        )
    return inverse.reshape(-1).astype(np.int64), sizes.astype(np.int64), first.astype(np.int64)


def duplicate_count(codes: np.ndarray, base: int) -> int:
    """Items minus distinct tuples: 0 means every row of `codes` is unique."""
    _, sizes, _ = group_tuples(codes, base)
    return int(codes.shape[0] - sizes.size)


def collision_report(codes: np.ndarray, codebook_size: int) -> dict[str, Any]:
    """Collision statistics of raw codes (N, L) int in [0, K).

    duplicate_rate = 1 - distinct/items; colliding_share = items_in_colliding_groups / items,
    where items_in_colliding_groups counts every item that shares its tuple;
    group_size_histogram maps group size -> number of groups. `collision_rate` is the old
    name of duplicate_rate, kept one release for existing readers.
    """
    n, levels = codes.shape
    _, sizes, _ = group_tuples(codes, codebook_size)
    hist_sizes, hist_counts = np.unique(sizes, return_counts=True)
    in_colliding = int(sizes[sizes > 1].sum())
    return {
        "items": int(n),
        "levels": int(levels),
        "codebook_size": int(codebook_size),
        "distinct_tuples": int(sizes.size),
        "duplicate_rate": float(1.0 - sizes.size / n) if n else 0.0,
        "collision_rate": float(1.0 - sizes.size / n) if n else 0.0,  # alias of duplicate_rate
        "colliding_tuples": int((sizes > 1).sum()),
        "items_in_colliding_groups": in_colliding,
        "colliding_share": float(in_colliding / n) if n else 0.0,
        "largest_group": int(sizes.max()) if n else 0,
        "group_size_histogram": {str(int(s)): int(c) for s, c in zip(hist_sizes, hist_counts)},
        "utilisation": metrics.utilisation(codes, codebook_size),
        "perplexity": metrics.perplexity(codes, codebook_size),
    }


def collisions_schema(levels: int) -> pa.Schema:
    return pa.schema(
        [pa.field(f"c{l}", pa.uint16(), nullable=False) for l in range(levels)]
        + [
            pa.field("item_ids", pa.list_(pa.string()), nullable=False),
            pa.field("size", pa.int64(), nullable=False),
        ]
    )


def collisions_table(codes: np.ndarray, item_ids: Sequence[str], codebook_size: int) -> pa.Table:
    """One row per tuple shared by >= 2 items, in tuple order: c0..c{L-1}, item_ids (catalog order), size."""
    codes = np.asarray(codes)
    levels = codes.shape[1]
    inverse, sizes, first = group_tuples(codes, codebook_size)
    colliding = np.flatnonzero(sizes > 1)
    members = np.flatnonzero(sizes[inverse] > 1) if inverse.size else inverse
    # stable sort by group keeps catalog order inside each group
    members = members[np.argsort(inverse[members], kind="stable")]
    offsets = np.zeros(colliding.size + 1, dtype=np.int32)
    np.cumsum(sizes[colliding], out=offsets[1:])
    ids = np.asarray(item_ids, dtype=object)[members]
    list_arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, type=pa.string()))
    rep = codes[first[colliding]] if colliding.size else np.zeros((0, levels), dtype=np.int64)
    arrays = [pa.array(rep[:, l].astype(np.uint16)) for l in range(levels)]
    arrays += [list_arr, pa.array(sizes[colliding].astype(np.int64))]
    return pa.Table.from_arrays(arrays, schema=collisions_schema(levels))
