"""Collision resolution: make every item's ID unique.

Both strategies accept `held` items (IDs carried over from a previous run): held
items keep their codes and suffix exactly, and free items are placed around them.

- `suffix` (TIGER): ID = (codes, s). Within each group of items sharing a tuple, free
  items are ordered by distance to the tuple's reconstruction, then item_id, and take
  the smallest suffixes not held, so singletons get 0 and a group of n gets 0..n-1.
- `reassign` (LC-Rec / LETTER, no extra token): in each colliding group the closest
  free item keeps the tuple (unless a held item has it) and the others move to the
  nearest free last-level code under the same prefix, greedily in order of distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import UserError
from ..core.metrics import group_tuples, tuple_keys
from .collisions import duplicate_count
from .lookup import format_sid


@dataclass
class Resolved:
    """codes (N, L) int64 and suffix (N,) int64 after resolution; report: what it did."""

    codes: np.ndarray
    suffix: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def _id_rank(item_ids: np.ndarray) -> np.ndarray:
    """Rank of each item_id among `item_ids` (str), the deterministic tie-break.

    Arrow sorts UTF-8 bytes, which orders strings exactly as Python compares them
    (by code point); ties keep input order, as a stable argsort would.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(item_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = pc.rank(pa.array(np.asarray(item_ids, dtype=object), pa.string()), sort_keys="ascending", tiebreaker="first")
    return ranks.to_numpy().astype(np.int64) - 1


def resolve_suffix(codes, item_ids, codebook_size, oracle, held=None, held_suffix=None, groups=None) -> Resolved:
    """Suffix resolution. codes (N, L) int64; item_ids (N,) str; held (N,) bool; groups:
    group_tuples(codes, codebook_size) when the caller has it.

    The suffix space is `codebook_size` values; a group larger than that is a UserError.
    `oracle.distance(idx)` gives the distance to the tuple's reconstruction (only
    called for free items in colliding groups).
    """
    n = codes.shape[0]
    held = np.zeros(n, dtype=bool) if held is None else np.asarray(held, dtype=bool)
    suffix = np.zeros(n, dtype=np.int64)
    if held.any():
        suffix[held] = np.asarray(held_suffix)[held]
    inverse, sizes, _ = group_tuples(codes, codebook_size) if groups is None else groups
    too_big = np.flatnonzero(sizes > codebook_size)
    if too_big.size:
        g = int(too_big[np.argmax(sizes[too_big])])
        example = codes[np.flatnonzero(inverse == g)[0]]
        raise UserError(
            f"{int(sizes[g])} items share codes {format_sid(example)} but the suffix has only "
            f"{codebook_size} values; train with a bigger codebook_size or more levels"
        )
    need = np.flatnonzero(~held & (sizes[inverse] > 1))
    if need.size:
        dist = oracle.distance(need)
        order = np.lexsort((_id_rank(np.asarray(item_ids, dtype=object)[need]), dist, inverse[need]))
        need, groups = need[order], inverse[need[order]]
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        pos = np.arange(need.size) - np.repeat(starts, np.diff(np.r_[starts, need.size]))
        suffix[need] = pos
        # groups that also hold carried-over IDs: free items take the suffixes not held
        held_groups = np.unique(inverse[held]) if held.any() else np.zeros(0, np.int64)
        for g in np.intersect1d(held_groups, groups):
            taken = set(suffix[held & (inverse == g)].tolist())
            free = [s for s in range(codebook_size) if s not in taken]
            sel = groups == g
            suffix[need[sel]] = np.asarray(free, dtype=np.int64)[pos[sel]]
    resolved = Resolved(codes, suffix, {
        "strategy": "suffix",
        "items_with_suffix_gt0": int((suffix > 0).sum()),
        "share_suffix_gt0": float((suffix > 0).mean()) if n else 0.0,
        "max_suffix": int(suffix.max()) if n else 0,
    })
    assert_unique(resolved, codebook_size)
    return resolved


def resolve_reassign(codes, item_ids, codebook_size, oracle, held=None) -> Resolved:
    """Reassign resolution (no extra token): codes (N, L) int64 -> unique codes, suffix 0.

    Movers keep levels < L-1 and take the nearest free last-level code in that prefix;
    a prefix with more items than K last-level codes is a UserError.
    """
    n, levels = codes.shape
    K = codebook_size
    held = np.zeros(n, dtype=bool) if held is None else np.asarray(held, dtype=bool)
    ids = np.asarray(item_ids, dtype=object)
    inverse, sizes, _ = group_tuples(codes, K)
    cand = np.flatnonzero(~held & (sizes[inverse] > 1))
    movers = np.zeros(0, dtype=np.int64)
    before = np.zeros(0, dtype=np.float32)
    if cand.size:
        dist = oracle.distance(cand)
        order = np.lexsort((_id_rank(ids[cand]), dist, inverse[cand]))
        cand, dist, groups = cand[order], dist[order], inverse[cand[order]]
        first = np.r_[True, groups[1:] != groups[:-1]]
        held_groups = np.unique(inverse[held]) if held.any() else np.zeros(0, np.int64)
        stays = first & ~np.isin(groups, held_groups)
        movers, before = cand[~stays], dist[~stays]
    new_codes = codes.copy()
    after = np.zeros(movers.size, dtype=np.float32)
    if movers.size:
        after = _place_movers(new_codes, movers, ids, K, oracle)
    added = after - before
    resolved = Resolved(new_codes, np.zeros(n, dtype=np.int64), {
        "strategy": "reassign",
        "items_moved": int(movers.size),
        "moved_share": float(movers.size / n) if n else 0.0,
        # latent L2 distance to the tuple's reconstruction, before and after moving
        "distortion_before_mean_moved": float(before.mean()) if movers.size else 0.0,
        "distortion_after_mean_moved": float(after.mean()) if movers.size else 0.0,
        "distortion_added_mean_moved": float(added.mean()) if movers.size else 0.0,
        "distortion_added_mean_all_items": float(added.sum() / n) if n else 0.0,
    })
    assert_unique(resolved, K)
    return resolved


def _place_movers(codes: np.ndarray, movers: np.ndarray, ids: np.ndarray, K: int, oracle) -> np.ndarray:
    """Give each mover a free last-level code in its prefix (codes edited in place).

    Returns the movers' new distances to their tuple's reconstruction, (m,) float32.
    """
    levels = codes.shape[1]
    if levels == 1:
        prefix = np.zeros(codes.shape[0], np.int64)
    elif tuple_keys(codes[:1], K) is not None:  # prefix * K + last code fits in int64
        prefix = tuple_keys(codes[:, :-1], K)
    else:  # number prefixes by row-wise grouping instead (values < N)
        prefix, _, _ = group_tuples(codes[:, :-1], K)
    is_mover = np.zeros(codes.shape[0], dtype=bool)
    is_mover[movers] = True
    # last-level codes already held under each prefix, as sorted prefix*K + code keys
    stay_keys = np.sort(prefix[~is_mover] * K + codes[~is_mover, -1])
    residual = oracle.residual_before_last(movers)
    book = oracle.last_codebook
    # squared distances of every mover's residual to every last-level codeword, (m, K)
    cost = (residual * residual).sum(1, keepdims=True) - 2.0 * residual @ book.T + (book * book).sum(1)[None, :]
    rank = _id_rank(ids[movers])
    mover_prefix = prefix[movers]
    order = np.argsort(mover_prefix, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(mover_prefix[order]) != 0])
    for s, e in zip(starts, np.r_[starts[1:], order.size]):
        rows = order[s:e]
        p = mover_prefix[rows[0]]
        taken = np.zeros(K, dtype=bool)
        lo, hi = np.searchsorted(stay_keys, [p * K, p * K + K])
        taken[stay_keys[lo:hi] - p * K] = True
        if rows.size > int((~taken).sum()):
            raise UserError(
                f"{rows.size + int(taken.sum())} items share the prefix "
                f"{format_sid(codes[movers[rows[0]], :-1])} but only {K} last-level codes exist; "
                "train with a bigger codebook_size or more levels, or use --resolve suffix"
            )
        # greedy by distance: scan (mover, code) pairs cheapest first; ties by item_id then code
        sub = cost[rows]
        m = rows.size
        flat_cost = sub.reshape(-1)
        flat_row = np.repeat(np.arange(m), K)
        flat_code = np.tile(np.arange(K), m)
        pair_order = np.lexsort((flat_code, rank[rows][flat_row], flat_cost))
        done = np.zeros(m, dtype=bool)
        left = m
        for q in pair_order:
            r, k = flat_row[q], flat_code[q]
            if done[r] or taken[k]:
                continue
            done[r], taken[k] = True, True
            codes[movers[rows[r]], -1] = k
            left -= 1
            if left == 0:
                break
    return np.linalg.norm(residual - book[codes[movers, -1]], axis=1).astype(np.float32)


def assert_unique(resolved: Resolved, codebook_size: int) -> None:
    """Raise AssertionError unless every (codes, suffix) row is unique (checked before writing)."""
    full = np.concatenate([resolved.codes, resolved.suffix[:, None]], axis=1)
    dup = duplicate_count(full, max(codebook_size, int(full.max(initial=0)) + 1))
    if dup:
        raise AssertionError(f"ID resolution left {dup} duplicate ID(s)")
