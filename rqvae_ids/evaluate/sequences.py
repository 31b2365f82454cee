"""User interaction sequences and the leave-one-out split of the generative-retrieval papers.

Items are referred to by their index in the catalog order (the row order of
embeddings.parquet). Protocol (TIGER, P5): each user's sequence sorted by its
order column; the last item is the test target, the second last the validation
target; histories are truncated to the last `max_history` items; training uses
each sequence without its last two items.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.errors import UserError
from ..core.io import require_file


@dataclass
class Split:
    """Leave-one-out split. Every array holds int64 catalog indices.

    train: per user, the sequence without its last two items (may be short).
    valid_histories / valid_targets: history = seq[:-2] (last max_history), target = seq[-2].
    test_histories / test_targets: history = seq[:-1] (last max_history), target = seq[-1].
    users: user ids, aligned with the per-user lists.
    """

    users: list[str]
    train: list[np.ndarray]
    valid_histories: list[np.ndarray]
    valid_targets: np.ndarray
    test_histories: list[np.ndarray]
    test_targets: np.ndarray
    order_column: str
    max_history: int


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def load_interactions(path: str | os.PathLike, item_ids, log=_note) -> tuple[list[str], list[np.ndarray], str]:
    """Read interactions (CSV/TSV/Parquet, optionally .gz) into per-user index sequences.

    Needs columns `user_id`, `item_id`; orders by `timestamp` when it has values,
    else by `position`, else by file order. Interactions with items missing from
    the catalog are dropped, not an error (catalogs get filtered), but said through
    `log` (default: a line on stderr) with their count and an example.
    Returns (users, sequences, order column used).
    """
    p = require_file(path, "interactions file")
    frame = _read_table(p)
    missing = {"user_id", "item_id"} - set(frame.columns)
    if missing:
        raise UserError(
            f"{p}: missing column(s) {sorted(missing)}; found {list(frame.columns)}"
        )
    if frame.empty:
        raise UserError(f"{p}: the interactions file has no rows")
    users_col = frame["user_id"].astype(str).to_numpy()
    items_col = frame["item_id"].astype(str)
    if "timestamp" in frame.columns and frame["timestamp"].notna().any():
        order = "timestamp"
    elif "position" in frame.columns and frame["position"].notna().any():
        order = "position"
    else:
        order = "file order"
    # Arrow's hash lookup: pandas' get_indexer over 7M string rows costs ~30 s.
    found = pc.index_in(pa.array(items_col, pa.string()), value_set=pa.array(list(item_ids), pa.string()))
    item = found.to_numpy(zero_copy_only=False)
    unknown = np.isnan(item) if item.dtype.kind == "f" else np.zeros(len(item), bool)
    if unknown.all():
        raise UserError(f"{p}: no interaction refers to an item of the catalog "
                        f"(e.g. item_id {items_col.iloc[0]!r})")
    if unknown.any():
        log(f"interactions: dropped {int(unknown.sum()):,} of {len(frame):,} rows whose item_id is not in the "
            f"catalog (e.g. {items_col[unknown].iloc[0]!r})")
    keep = ~unknown
    item = item[keep].astype(np.int64)
    user_code, user_names = pd.factorize(users_col[keep], sort=True)  # codes in sorted user order
    # Stable sort by user, then by the order column: rows tied on both keep their file order.
    keys = [user_code] if order == "file order" else [_order_key(frame[order].to_numpy()[keep]), user_code]
    rows = np.lexsort(keys)
    user_code, item = user_code[rows], item[rows]
    # One split of the sorted rows at each change of user (a per-user group-by loop costs
    # ~25 s at 500k users); users come out in sorted order, as a sorted group-by gives them.
    bounds = np.flatnonzero(user_code[1:] != user_code[:-1]) + 1
    users = [str(u) for u in user_names[user_code[np.r_[0, bounds]]]]
    sequences = np.split(item, bounds)
    return users, sequences, order


def _order_key(values: np.ndarray) -> np.ndarray:
    """An order column as a sortable array: numbers as they are (missing last, as pandas sorts
    them), anything else by its rank among the column's values."""
    if values.dtype.kind in "iub":
        return values
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), np.inf, values)
    codes, _ = pd.factorize(pd.Series(values), sort=True)  # missing values get -1: put them last
    return np.where(codes < 0, np.iinfo(np.int64).max, codes)


def _read_table(p: Path) -> pd.DataFrame:
    name = p.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(p)
        sep = "\t" if name.endswith(".tsv") else ","
        try:  # Arrow's multi-threaded reader: a third of the time at 7M rows
            return pd.read_csv(p, sep=sep, dtype={"user_id": str, "item_id": str}, engine="pyarrow")
        except Exception:  # noqa: BLE001 - what it cannot parse, the default reader reads or explains
            return pd.read_csv(p, sep=sep, dtype={"user_id": str, "item_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise UserError(f"cannot read interactions {p}: {e}") from None


def leave_one_out(
    users: list[str], sequences: list[np.ndarray], max_history: int = 20, order_column: str = ""
) -> Split:
    """Split sequences; users with fewer than 3 interactions are left out (no train item)."""
    keep = [i for i, s in enumerate(sequences) if len(s) >= 3]
    if not keep:
        raise UserError("no user has 3 or more interactions: cannot build a leave-one-out split")
    seqs = [np.asarray(sequences[i], dtype=np.int64) for i in keep]
    return Split(
        users=[users[i] for i in keep],
        train=[s[:-2] for s in seqs],
        valid_histories=[s[:-2][-max_history:] for s in seqs],
        valid_targets=np.array([s[-2] for s in seqs], dtype=np.int64),
        test_histories=[s[:-1][-max_history:] for s in seqs],
        test_targets=np.array([s[-1] for s in seqs], dtype=np.int64),
        order_column=order_column,
        max_history=max_history,
    )


def sample_users(split: Split, max_users: int, seed: int = 0) -> Split:
    """The split with its validation and test side cut to a seeded sample of `max_users` users
    (all when max_users is 0 or not smaller): ranking the whole catalog for every user costs
    O(users x items), the part of next-item evaluation that grows faster than the catalog.

    `train` keeps every user's sequence (fitting is linear in the interactions and the
    retrievers' popularity counts should not shrink); `users` is aligned with the sampled
    validation/test lists.
    """
    n = len(split.test_targets)
    if not max_users or n <= max_users:
        return split
    keep = np.sort(np.random.default_rng([seed, 27]).choice(n, size=max_users, replace=False))
    return Split(
        users=[split.users[i] for i in keep],
        train=split.train,
        valid_histories=[split.valid_histories[i] for i in keep],
        valid_targets=split.valid_targets[keep],
        test_histories=[split.test_histories[i] for i in keep],
        test_targets=split.test_targets[keep],
        order_column=split.order_column,
        max_history=split.max_history,
    )
