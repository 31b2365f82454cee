"""`balanced` resolution: an exact balanced assignment of the last level within each prefix.

LC-Rec and LETTER balance the last level inside the tokenizer (Sinkhorn); here it is an
exact, deterministic minimum-cost assignment (scipy's linear_sum_assignment, Hungarian-type)
per prefix group: inside every prefix (the first L-1 codes) in which two units would share
a last code, every free unit gets a distinct last-level code, minimising the summed squared
distance of the units' residuals to their codewords. Prefixes, and so the neighbourhood
structure, are unchanged; unlike `reassign` (keep the closest, move the rest greedily),
non-colliding items may move too when that lowers the total distortion.

A unit is a group of free items with the same prefix and the same text (text_sha256):
items whose text is identical to another item's must share their tuple (no text tells
them apart) and are told apart by the suffix token, as in `suffix` resolution; every other
item gets a tuple of its own. Held items (carried over from a previous run) keep their codes;
free units take the codes left free under their prefix (a free item with the text of a held
one takes its tuple). IDs are L codes + the suffix token (0 except within identical texts).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import UserError
from .collisions import group_tuples
from .lookup import format_sid
from .resolve import Resolved, _id_rank, resolve_suffix


def resolve_balanced(codes, item_ids, text_keys, codebook_size, oracle, held=None, held_suffix=None) -> Resolved:
    """codes (N, L) int64; item_ids, text_keys (N,) str; held (N,) bool -> Resolved (codes, suffix)."""
    n, K = codes.shape[0], codebook_size
    held = np.zeros(n, dtype=bool) if held is None else np.asarray(held, dtype=bool)
    text_keys = np.asarray(text_keys, dtype=object)
    prefix = _prefix_ids(codes, K)
    new_codes = codes.copy()
    moved = 0
    groups = list(_colliding_prefixes(codes, prefix, text_keys, K))
    # every residual needed, in one pass of the model (one call per prefix is ~10x slower)
    todo = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    residuals = dict(zip(todo.tolist(), oracle.residual_before_last(todo))) if todo.size else {}
    for rows in groups:
        moved += _balance_prefix(new_codes, rows, held, text_keys, np.asarray(item_ids, dtype=object), K,
                                 oracle.last_codebook, residuals)
    same_text = _same_text_share(new_codes, text_keys, K)
    resolved = resolve_suffix(new_codes, item_ids, K, oracle, held, held_suffix)
    inverse, sizes, _ = group_tuples(new_codes, K)
    sharing = sizes[inverse] > 1
    resolved.report = {
        "strategy": "balanced",
        "items_moved": int(moved),
        "moved_share": float(moved / n) if n else 0.0,
        "items_sharing_tuple": int(sharing.sum()),
        "items_sharing_tuple_identical_text": int(same_text.sum()),
        # the target: items sharing a full tuple, those with an identical text left out
        "sharing_share_excl_identical_text": float((sharing & ~same_text).sum() / n) if n else 0.0,
        "items_with_suffix_gt0": int((resolved.suffix > 0).sum()),
        "max_suffix": int(resolved.suffix.max()) if n else 0,
    }
    return resolved


def _prefix_ids(codes: np.ndarray, K: int) -> np.ndarray:
    if codes.shape[1] == 1:
        return np.zeros(codes.shape[0], np.int64)
    inverse, _, _ = group_tuples(codes[:, :-1], K)
    return inverse


def _colliding_prefixes(codes, prefix, text_keys, K):
    """Row indices of each prefix group in which two different texts share a full tuple."""
    inverse, sizes, _ = group_tuples(codes, K)
    bad = set()
    for g in np.flatnonzero(sizes > 1):
        rows = np.flatnonzero(inverse == g)
        if len(set(text_keys[rows].tolist())) > 1:
            bad.add(int(prefix[rows[0]]))
    order = np.argsort(prefix, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(prefix[order]) != 0])
    for s, e in zip(starts, np.r_[starts[1:], order.size]):
        if int(prefix[order[s]]) in bad:
            yield np.sort(order[s:e])


def _balance_prefix(codes, rows, held, text_keys, ids, K, last_codebook, residuals) -> int:
    """Exact min-cost distinct last codes for the free units of one prefix (codes edited in place)."""
    from scipy.optimize import linear_sum_assignment

    held_rows, free_rows = rows[held[rows]], rows[~held[rows]]
    taken = {int(c) for c in codes[held_rows, -1]}
    held_text = {text_keys[r]: int(codes[r, -1]) for r in held_rows}
    units: dict = {}
    for r in free_rows[np.argsort(_id_rank(ids[free_rows]), kind="stable")]:  # deterministic unit order
        units.setdefault(text_keys[r], []).append(int(r))
    before = codes[free_rows, -1].copy()
    for key in [k for k in units if k in held_text]:  # same text as a held item: share its tuple
        codes[units.pop(key), -1] = held_text[key]
    free_codes = np.array([c for c in range(K) if c not in taken], dtype=np.int64)
    if len(units) > len(free_codes):
        raise UserError(f"{len(units) + len(taken)} distinct texts share the prefix {format_sid(codes[rows[0], :-1])} "
                        f"but only {K} last-level codes exist; train with a bigger codebook_size or more levels, "
                        "or use --resolve suffix")
    if units:
        reps = np.array([members[0] for members in units.values()], dtype=np.int64)
        residual = np.stack([residuals[int(r)] for r in reps]).astype(np.float64)
        book = np.asarray(last_codebook, np.float64)[free_codes]
        cost = (residual ** 2).sum(1)[:, None] - 2.0 * residual @ book.T + (book ** 2).sum(1)[None, :]
        unit_idx, code_idx = linear_sum_assignment(cost)
        for u, c in zip(unit_idx, code_idx):
            codes[list(units.values())[u], -1] = free_codes[c]
    return int((codes[free_rows, -1] != before).sum())


def _same_text_share(codes: np.ndarray, text_keys: np.ndarray, K: int) -> np.ndarray:
    """(N,) bool: the item shares its full tuple with another item of identical text."""
    inverse, sizes, _ = group_tuples(codes, K)
    out = np.zeros(len(codes), dtype=bool)
    for g in np.flatnonzero(sizes > 1):
        rows = np.flatnonzero(inverse == g)
        keys = text_keys[rows]
        _, inv, counts = np.unique(keys.astype(str), return_inverse=True, return_counts=True)
        out[rows[counts[inv] > 1]] = True
    return out
