"""Collision check: group items by their full code tuple (metrics.group_tuples)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..core import metrics
from ..core.metrics import group_tuples

Groups = tuple[np.ndarray, np.ndarray, np.ndarray]  # group_tuples' (inverse, sizes, first)


def duplicate_count(codes: np.ndarray, base: int) -> int:
    """Items minus distinct tuples: 0 means every row of `codes` is unique."""
    _, sizes, _ = group_tuples(codes, base)
    return int(codes.shape[0] - sizes.size)


def collision_report(codes: np.ndarray, codebook_size: int, groups: Groups | None = None) -> dict[str, Any]:
    """Collision statistics of raw codes (N, L) int in [0, K) (`groups`: their group_tuples, if known).

    duplicate_rate and colliding_share: `metrics.duplicate_and_colliding` (items_in_colliding_groups counts
    every item that shares its tuple); group_size_histogram maps group size -> number of groups.
    Files written before issue 26 also hold `collision_rate` (= duplicate_rate); readers fall back to it.
    """
    n, levels = codes.shape
    _, sizes, _ = group_tuples(codes, codebook_size) if groups is None else groups
    hist_sizes, hist_counts = np.unique(sizes, return_counts=True)
    duplicate_rate, colliding_share = metrics.duplicate_and_colliding(sizes)
    return {
        "items": int(n),
        "levels": int(levels),
        "codebook_size": int(codebook_size),
        "distinct_tuples": int(sizes.size),
        "duplicate_rate": duplicate_rate,
        "colliding_tuples": int((sizes > 1).sum()),
        "items_in_colliding_groups": int(sizes[sizes > 1].sum()),
        "colliding_share": colliding_share,
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


def collisions_table(codes: np.ndarray, item_ids: Sequence[str] | pa.Array, codebook_size: int,
                     groups: Groups | None = None) -> pa.Table:
    """One row per tuple shared by >= 2 items, in tuple order: c0..c{L-1}, item_ids (catalog order), size.
    `groups`: group_tuples(codes, codebook_size) when the caller has it."""
    codes = np.asarray(codes)
    levels = codes.shape[1]
    inverse, sizes, first = group_tuples(codes, codebook_size) if groups is None else groups
    colliding = np.flatnonzero(sizes > 1)
    members = np.flatnonzero(sizes[inverse] > 1) if inverse.size else inverse
    # stable sort by group keeps catalog order inside each group
    members = members[np.argsort(inverse[members], kind="stable")]
    offsets = np.zeros(colliding.size + 1, dtype=np.int32)
    np.cumsum(sizes[colliding], out=offsets[1:])
    if isinstance(item_ids, pa.Array):  # already Arrow strings: no Python objects on the way
        ids = item_ids.take(pa.array(members))
    else:
        ids = pa.array(np.asarray(item_ids, dtype=object)[members], type=pa.string())
    list_arr = pa.ListArray.from_arrays(pa.array(offsets), ids)
    rep = codes[first[colliding]] if colliding.size else np.zeros((0, levels), dtype=np.int64)
    arrays = [pa.array(rep[:, l].astype(np.uint16)) for l in range(levels)]
    arrays += [list_arr, pa.array(sizes[colliding].astype(np.int64))]
    return pa.Table.from_arrays(arrays, schema=collisions_schema(levels))
